/*
 * mhd_fixed.c -- the HTTP ceiling for `make bench`: a minimal libmicrohttpd
 * server with lazykvd's threading model (internal thread pool, epoll) that
 * answers every request with the same 100-byte body. Like lazykvd, it queues
 * the response on the second call, to keep connections alive.
 *
 * usage: mhd_fixed PORT THREADS   (runs until SIGINT/SIGTERM)
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char body[101];

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    static int first_call_marker;
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    *upload_size = 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(100, body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mhd_fixed PORT THREADS\n");
        return 2;
    }
    memset(body, 'x', 100);
    unsigned threads = (unsigned)atoi(argv[2]);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]), NULL, NULL,
        answer, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
        MHD_OPTION_CONNECTION_LIMIT, 20000u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd_fixed: cannot listen\n");
        return 1;
    }
    int sig;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    return 0;
}
