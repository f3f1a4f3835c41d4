/* notify: the sd_notify datagrams lazykvd sends to $NOTIFY_SOCKET, on a
 * socket of the test's own, in the abstract namespace and on a path. */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* Binds a datagram socket to name ("@x": abstract, else a path); returns it. */
static int listener(const char *name)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
    return fd;
}

/* The next datagram on fd, as a string (the test fails if none is queued). */
static const char *next(int fd)
{
    static char buf[600];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    return buf;
}

START_TEST(sends_each_state_to_an_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof(name), "@lazykv-test-notify-%d", (int)getpid());
    int fd = listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_int_eq(notify_ready("listening on http://127.0.0.1:1/\nsecond line"), 1);
    ck_assert_str_eq(next(fd), "READY=1\nSTATUS=listening on http://127.0.0.1:1/");
    ck_assert_int_eq(notify_ready(NULL), 1);
    ck_assert_str_eq(next(fd), "READY=1");
    ck_assert_int_eq(notify_reloading(), 1);
    const char *r = next(fd);
    ck_assert_msg(strncmp(r, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0, "%s", r);
    ck_assert_int_gt(strtoull(r + 27, NULL, 10), 0);
    ck_assert_int_eq(notify_stopping(), 1);
    ck_assert_str_eq(next(fd), "STOPPING=1");
    ck_assert_int_eq(recv(fd, (char[8]){0}, 8, MSG_DONTWAIT), -1); /* nothing else */
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(sends_to_a_socket_on_a_path)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/lazykv-test-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(notify_stopping(), 1);
    ck_assert_str_eq(next(fd), "STOPPING=1");
    close(fd);
    unlink(path);
    /* nobody listens there any more: the failure is returned */
    ck_assert_int_eq(notify_stopping(), -1);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(unset_is_a_no_op_and_bad_names_are_refused)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(notify_ready("x"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(notify_stopping(), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    errno = 0;
    ck_assert_int_eq(notify_stopping(), -1);
    ck_assert_int_eq(errno, EINVAL);
    setenv("NOTIFY_SOCKET", "@", 1);
    ck_assert_int_eq(notify_stopping(), -1);
    char long_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_path, 1);
    ck_assert_int_eq(notify_stopping(), -1);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sends_each_state_to_an_abstract_socket);
    tcase_add_test(tc, sends_to_a_socket_on_a_path);
    tcase_add_test(tc, unset_is_a_no_op_and_bad_names_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
