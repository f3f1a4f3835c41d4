/*
 * cli.c -- `lazykv`, the command-line client (bin/lazykv): get, put, rm,
 * ls, watch, lock and health, written only against liblazykv's public
 * interface (lazykv.h) and libc/POSIX.
 *
 *   lazykv [GLOBAL OPTIONS] COMMAND [OPTIONS] ARGS
 *
 * Global options come before COMMAND, a command's options after it (for
 * lock, after NAME). Every failure is one line on stderr naming the command,
 * the key and the server's problem detail (lkv_last_error), and an exit
 * status from one table (exit_of): 0 done; 1 absent key or failed
 * precondition; 2 usage or a request the server refused as malformed; 69
 * no endpoint reachable or 503/timeout; 75 lock not acquired within --wait;
 * 77 401/403; 76, 71 and 74 for the rest (see usage_main).
 *
 * Process state is one struct cli, filled by the option parsers and passed
 * down; the only globals are the flags the signal handlers set.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* execvpe */
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "lazykv.h"

#define PROG "lazykv"
#define DEFAULT_ENDPOINTS "http://127.0.0.1:8080"
#define TTL_MAX 315360000u         /* the server's limit for ttl */
#define LOCK_TTL_DEFAULT 15u
#define LOCK_POLL_NS 100000000L    /* lock: how often the lock and COMMAND are checked */
#define WATCH_GRACE_MS 2000        /* watch: how long a stopped watch may take to return */

/* Exit statuses (sysexits.h where one fits). */
enum {
    EXIT_DONE = 0,
    EXIT_NO = 1,                   /* absent key, failed precondition */
    EXIT_USAGE = 2,                /* bad command line, or a 400 */
    EXIT_UNAVAILABLE = EX_UNAVAILABLE, /* 69: no endpoint reachable, 503, timeout */
    EXIT_OSERR = EX_OSERR,         /* 71: out of memory, fork failed */
    EXIT_IOERR = EX_IOERR,         /* 74: writing stdout or reading stdin failed */
    EXIT_LOCKED = EX_TEMPFAIL,     /* 75: the lock stayed held for --wait */
    EXIT_PROTOCOL = EX_PROTOCOL,   /* 76: any other answer (413, 500, ...) */
    EXIT_NOPERM = EX_NOPERM        /* 77: 401, 403 */
};

/* The whole state of one run. */
struct cli {
    const char *endpoints;         /* ref: argv or the environment */
    struct lkv_options opt;        /* strings ref argv or the environment */
    lkv *c;                        /* owned: opened by cli_open */
};

/* ---- messages --------------------------------------------------------------- */

/* Appends s to f with control bytes written as \xHH, so that one message
 * stays one line whatever bytes a key or a server detail holds. */
static void put_clean(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* Writes "lazykv: WHAT[ SUBJECT]: MESSAGE\n" on stderr in one write: what
 * is the command (NULL: "lazykv: MESSAGE"), subject the key (or NULL),
 * message a printf format. */
static void say(const char *what, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const char *what, const char *subject, const char *fmt, ...)
{
    char *line = NULL, *msg = NULL;
    size_t len = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg = NULL;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL) {
        fprintf(stderr, PROG ": %s: %s\n", what ? what : "", msg ? msg : fmt);
        free(msg);
        return;
    }
    fputs(PROG ": ", f);
    if (what) {
        put_clean(f, what);
        if (subject) {
            fputc(' ', f);
            put_clean(f, subject);
        }
        fputs(": ", f);
    }
    put_clean(f, msg ? msg : fmt);
    fputc('\n', f);
    if (fclose(f) == 0)
        fwrite(line, 1, len, stderr);
    free(line);
    free(msg);
}

/* A usage error: one line, then exit status 2. */
static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(cmd, NULL, "%s (see " PROG "%s%s --help)", msg, cmd ? " " : "", cmd ? cmd : "");
    return EXIT_USAGE;
}

/* The exit status of a library error: the one table. */
static int exit_of(lkv_err e)
{
    switch (e) {
    case LKV_OK: return EXIT_DONE;
    case LKV_ERR_NOT_FOUND:
    case LKV_ERR_KEY_EXISTS:
    case LKV_ERR_KEY_MODIFIED: return EXIT_NO;
    case LKV_ERR_CANNOT_LOCK: return EXIT_LOCKED;
    case LKV_ERR_TIMEOUT:
    case LKV_ERR_UNAVAILABLE: return EXIT_UNAVAILABLE;
    case LKV_ERR_UNAUTHORIZED:
    case LKV_ERR_FORBIDDEN: return EXIT_NOPERM;
    case LKV_ERR_INVALID: return EXIT_USAGE;
    case LKV_ERR_NOMEM: return EXIT_OSERR;
    case LKV_ERR_IO: break;
    }
    return EXIT_PROTOCOL;
}

/* Reports a failed call on subject (one line: the server's detail, else
 * the error's name) and returns its exit status. */
static int fail(struct cli *cli, const char *cmd, const char *subject, lkv_err e)
{
    const char *detail = cli->c ? lkv_last_error(cli->c) : "";
    if (detail == NULL || *detail == '\0')
        detail = lkv_strerror(e);
    say(cmd, subject, "%s", detail ? detail : "failed");
    return exit_of(e);
}

/* Flushes stdout; 0, or EXIT_IOERR after saying why. */
static int finish_stdout(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        say(cmd, NULL, "writing to stdout: %s", strerror(errno));
        return EXIT_IOERR;
    }
    return EXIT_DONE;
}

/* ---- help ------------------------------------------------------------------- */

static const char help_main[] =
    "usage: " PROG " [GLOBAL OPTIONS] COMMAND [OPTIONS] ARGS\n"
    "\n"
    "A client of lazykv. Reads go to each key's master (read-your-writes)\n"
    "unless --lazy; writes go to each key's master.\n"
    "\n"
    "Commands (each has --help):\n"
    "  get KEY                        print the value, raw, on stdout\n"
    "  put KEY [VALUE]                write VALUE (or stdin); --ttl S, --if-absent,\n"
    "                                 --if-index N, --content-type T\n"
    "  rm KEY | rm --prefix P         delete a key, or every key under P\n"
    "  ls [PREFIX]                    list keys, one per line (--long: index, size,\n"
    "                                 expiry)\n"
    "  watch KEY | watch --prefix P   print one JSON line per change until\n"
    "                                 interrupted\n"
    "  lock NAME [--ttl S] [--wait S] -- COMMAND [ARG...]\n"
    "                                 run COMMAND while holding the lock NAME\n"
    "  health                         print lazykvd's /health document\n"
    "\n"
    "Global options:\n"
    "  -e, --endpoints URL[,URL...]   lazykvd endpoints, tried in order (default\n"
    "                                 $LAZYKV_ENDPOINTS, else " DEFAULT_ENDPOINTS ")\n"
    "      --token T                  bearer token (default $LAZYKV_TOKEN)\n"
    "      --cacert FILE              CA certificates to verify https endpoints\n"
    "      --cert FILE --key FILE     client certificate and its key\n"
    "      --lazy                     read from any partition (fast, possibly stale)\n"
    "      --timeout S                give up on a request after S seconds\n"
    "                                 (default 10)\n"
    "  -h, --help                     this help\n"
    "\n"
    "Exit status: 0 done; 1 absent key or failed precondition; 2 usage, or a\n"
    "request the server refused as malformed (400); 69 no endpoint reachable,\n"
    "503 or timeout; 71 out of memory or cannot fork; 74 cannot read stdin or\n"
    "write stdout; 75 lock still held after --wait; 76 any other answer from\n"
    "the server; 77 401 or 403. lock exits with COMMAND's status.\n"
    "Errors are one line on stderr: \"" PROG ": COMMAND KEY: detail\".\n";

static const char help_get[] =
    "usage: " PROG " [GLOBAL OPTIONS] get KEY\n"
    "\n"
    "Prints KEY's value on stdout, byte for byte (no newline added).\n"
    "Exit status 1 when KEY does not exist.\n";

static const char help_put[] =
    "usage: " PROG " [GLOBAL OPTIONS] put [OPTIONS] KEY [VALUE]\n"
    "\n"
    "Writes VALUE (or, without it, everything read from stdin) to KEY. Prints\n"
    "nothing. Options end at KEY, or at \"--\" (put -- -KEY VALUE).\n"
    "\n"
    "Options:\n"
    "      --ttl S             the key expires S seconds after the write\n"
    "                          (1 to 315360000; without it, no expiry)\n"
    "      --if-absent         write only if KEY does not exist (exit 1 if it does)\n"
    "      --if-index N        write only if KEY's index (its version, as\n"
    "                          `ls --long` and `watch` show it) is still N; exit 1\n"
    "                          if it changed or KEY is gone. N = 0 means\n"
    "                          --if-absent\n"
    "      --content-type T    the value's Content-Type (default: the server's,\n"
    "                          application/octet-stream); not with --if-absent\n"
    "                          or --if-index\n"
    "  -h, --help              this help\n";

static const char help_rm[] =
    "usage: " PROG " [GLOBAL OPTIONS] rm KEY\n"
    "       " PROG " [GLOBAL OPTIONS] rm --prefix PREFIX\n"
    "\n"
    "Deletes KEY (exit 1 when it does not exist), or every key whose name\n"
    "starts with PREFIX (non-empty; exit 0 even when there was none).\n";

static const char help_ls[] =
    "usage: " PROG " [GLOBAL OPTIONS] ls [--long] [PREFIX]\n"
    "\n"
    "Prints every key under PREFIX (all keys without it), sorted bytewise,\n"
    "one per line.\n"
    "\n"
    "Options:\n"
    "  -l, --long    one line per key: INDEX SIZE EXPIRY KEY, separated by one\n"
    "                space: the key's index (its version), the value's size in\n"
    "                bytes, its expiry (RFC 3339 UTC, milliseconds) or '-'\n"
    "  -h, --help    this help\n";

static const char help_watch[] =
    "usage: " PROG " [GLOBAL OPTIONS] watch KEY\n"
    "       " PROG " [GLOBAL OPTIONS] watch --prefix PREFIX\n"
    "\n"
    "Prints the current state, then one line per change, each one JSON object,\n"
    "until SIGINT or SIGTERM (then exit 0). For KEY:\n"
    "  {\"key\":K,\"index\":N,\"value\":V,\"content_type\":T,\"expires_at\":E}\n"
    "V is the value as a string when it is UTF-8; otherwise it is base64 and\n"
    "the object has \"encoding\":\"base64\". E is RFC 3339 UTC (milliseconds), or\n"
    "null when the key does not expire. When the key is absent (never written,\n"
    "deleted or expired): {\"key\":K,\"deleted\":true}.\n"
    "For --prefix, every key under PREFIX after each change:\n"
    "  {\"prefix\":P,\"keys\":[{...as above...},...]}\n"
    "A key or prefix that is not UTF-8 is written percent-encoded, with\n"
    "\"key_encoding\":\"url\" (or \"prefix_encoding\":\"url\").\n"
    "Exit 69 when no endpoint answered for the request timeout.\n";

static const char help_lock[] =
    "usage: " PROG " [GLOBAL OPTIONS] lock NAME [--ttl S] [--wait S] [--] COMMAND [ARG...]\n"
    "\n"
    "Acquires the lock NAME (a key holding \"HOST:PID\", with a TTL), runs\n"
    "COMMAND while holding it, renews it (every S/3 seconds) while COMMAND runs,\n"
    "and releases it when COMMAND ends. COMMAND's environment has\n"
    "LAZYKV_LOCK_TOKEN, the lock's fencing token (its index: it grows with every\n"
    "acquisition). SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are\n"
    "passed on to COMMAND.\n"
    "\n"
    "Options:\n"
    "      --ttl S     the lock's TTL in seconds (default 15): how long it\n"
    "                  outlives this process if it dies\n"
    "      --wait S    wait up to S seconds for the lock (default 0: one try)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: COMMAND's (128 + N when signal N ended it; 127 when COMMAND\n"
    "was not found, 126 when it could not run); 75 when the lock was still held\n"
    "by another after --wait. If a renewal fails (the lock may be lost), COMMAND\n"
    "gets SIGTERM, a line says so on stderr, and the exit status is COMMAND's,\n"
    "or 1 if that was 0.\n";

static const char help_health[] =
    "usage: " PROG " [GLOBAL OPTIONS] health\n"
    "\n"
    "Prints lazykvd's /health document as it comes (JSON: \"status\" ok or\n"
    "degraded, and each partition's reachability) from the first endpoint that\n"
    "answers 200. Exit 0 then; 69 when no endpoint answered 200 within the\n"
    "timeout (every one unreachable, or answering 503: no partition reachable).\n";

/* ---- option parsing ------------------------------------------------------------ */

struct optdef {
    const char *name;              /* long name, without "--" */
    char letter;                   /* short name, or 0 */
    int has_arg;
};

enum { OPT_END = -1, OPT_DASHDASH = -2, OPT_BAD = -3 };

/*
 * Reads the option at argv[*i] against defs (ended by a NULL name):
 * "--name", "--name=VALUE", "--name VALUE", "-x", "-xVALUE", "-x VALUE".
 * Returns the index in defs (with *arg its value, advancing *i past it);
 * OPT_END when argv[*i] is not an option (end of argv, "-" or a word:
 * *i unchanged); OPT_DASHDASH for "--" (*i advanced past it); OPT_BAD after
 * a usage line naming cmd (NULL: the global options).
 */
static int opt_next(const char *cmd, int argc, char **argv, int *i, const struct optdef *defs,
                    const char **arg)
{
    if (*i >= argc)
        return OPT_END;
    const char *a = argv[*i];
    if (a[0] != '-' || a[1] == '\0')
        return OPT_END;
    if (strcmp(a, "--") == 0) {
        (*i)++;
        return OPT_DASHDASH;
    }
    const char *inline_val = NULL;
    int k;
    if (a[1] == '-') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (k = 0; defs[k].name; k++)
            if (strlen(defs[k].name) == nlen && memcmp(defs[k].name, name, nlen) == 0)
                break;
        if (defs[k].name == NULL) {
            usage_error(cmd, "unknown option '%.*s'", (int)(nlen + 2), a);
            return OPT_BAD;
        }
        if (eq)
            inline_val = eq + 1;
    } else {
        for (k = 0; defs[k].name; k++)
            if (defs[k].letter && defs[k].letter == a[1])
                break;
        if (defs[k].name == NULL) {
            usage_error(cmd, "unknown option '-%c'", a[1]);
            return OPT_BAD;
        }
        if (a[2] != '\0') {
            if (!defs[k].has_arg) {
                usage_error(cmd, "unknown option '%s'", a);
                return OPT_BAD;
            }
            inline_val = a + 2;
        }
    }
    (*i)++;
    *arg = NULL;
    if (!defs[k].has_arg) {
        if (inline_val) {
            usage_error(cmd, "--%s takes no value", defs[k].name);
            return OPT_BAD;
        }
        return k;
    }
    if (inline_val) {
        *arg = inline_val;
    } else if (*i < argc) {
        *arg = argv[(*i)++];
    } else {
        usage_error(cmd, "--%s needs a value", defs[k].name);
        return OPT_BAD;
    }
    return k;
}

/* Parses s as a whole decimal number in [min, max]: digits only (no sign,
 * no space, no 0x), no overflow. 0 on success, -1 otherwise. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A --ttl, --wait or --timeout value: seconds in [min, max]. */
static int parse_seconds(const char *cmd, const char *opt, const char *s, uint64_t min,
                         uint64_t max, uint64_t *out)
{
    if (parse_u64(s, min, max, out) == 0)
        return 0;
    usage_error(cmd, "--%s must be a whole number of seconds from %" PRIu64 " to %" PRIu64
                ", got '%s'", opt, min, max, s);
    return -1;
}

/* Checks that a KEY or PREFIX argument is not empty. */
static int nonempty(const char *cmd, const char *what, const char *s)
{
    if (s != NULL && *s != '\0')
        return 0;
    usage_error(cmd, "%s must not be empty", what);
    return -1;
}

/* Opens the client; 0, or an exit status after saying why. */
static int cli_open(struct cli *cli)
{
    cli->c = lkv_open(cli->endpoints, &cli->opt);
    if (cli->c != NULL)
        return 0;
    say(NULL, NULL, "malformed endpoint list '%s' (want http[s]://HOST[:PORT][,...])",
        cli->endpoints);
    return EXIT_USAGE;
}

/* ---- get --------------------------------------------------------------------- */

/* The options of a command that has only --help: -1 with *i at its first
 * argument, or the exit code (--help, a bad option). */
static int help_only(const char *cmd, const char *help, int argc, char **argv, int *i)
{
    static const struct optdef defs[] = {{"help", 'h', 0}, {NULL, 0, 0}};
    const char *arg;
    int k = opt_next(cmd, argc, argv, i, defs, &arg);
    if (k >= 0) {
        fputs(help, stdout);
        return EXIT_DONE;
    }
    return k == OPT_BAD ? EXIT_USAGE : -1;
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
    int i = 1, done = help_only("get", help_get, argc, argv, &i);
    if (done >= 0)
        return done;
    if (argc - i != 1)
        return usage_error("get", argc - i ? "one KEY only" : "KEY is required");
    const char *key = argv[i];
    if (nonempty("get", "KEY", key) != 0)
        return EXIT_USAGE;
    int rc = cli_open(cli);
    if (rc != 0)
        return rc;
    lkv_pair *p = NULL;
    lkv_err e = lkv_get(cli->c, key, &p);
    if (e != LKV_OK)
        return fail(cli, "get", key, e);
    if (p->value_len > 0)
        fwrite(p->value, 1, p->value_len, stdout);
    lkv_pair_free(p);
    return finish_stdout("get");
}

/* ---- put --------------------------------------------------------------------- */

/* Reads fd to its end into a fresh allocation (*out, NUL-terminated);
 * 0, or -1 with errno set. */
static int read_all(int fd, unsigned char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (cap - n < 2) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            free(buf);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int cmd_put(struct cli *cli, int argc, char **argv)
{
    enum { O_HELP, O_TTL, O_IF_ABSENT, O_IF_INDEX, O_CTYPE };
    static const struct optdef defs[] = {
        [O_HELP] = {"help", 'h', 0},          [O_TTL] = {"ttl", 0, 1},
        [O_IF_ABSENT] = {"if-absent", 0, 0},  [O_IF_INDEX] = {"if-index", 0, 1},
        [O_CTYPE] = {"content-type", 0, 1},   {NULL, 0, 0},
    };
    uint64_t ttl = 0, if_index = 0;
    int if_absent = 0, have_index = 0, i = 1, k;
    const char *ctype = NULL, *arg;
    while ((k = opt_next("put", argc, argv, &i, defs, &arg)) >= 0) {
        switch (k) {
        case O_HELP: fputs(help_put, stdout); return EXIT_DONE;
        case O_TTL:
            if (parse_seconds("put", "ttl", arg, 1, TTL_MAX, &ttl) != 0)
                return EXIT_USAGE;
            break;
        case O_IF_ABSENT: if_absent = 1; break;
        case O_IF_INDEX:
            if (parse_u64(arg, 0, UINT64_MAX, &if_index) != 0)
                return usage_error("put", "--if-index must be a whole number, got '%s'", arg);
            have_index = 1;
            break;
        case O_CTYPE:
            if (*arg == '\0')
                return usage_error("put", "--content-type must not be empty");
            ctype = arg;
            break;
        }
    }
    if (k == OPT_BAD)
        return EXIT_USAGE;
    if (if_absent && have_index)
        return usage_error("put", "--if-absent and --if-index exclude each other");
    if (ctype && (if_absent || have_index))
        return usage_error("put", "--content-type cannot be combined with --if-absent or --if-index");
    if (argc - i < 1 || argc - i > 2)
        return usage_error("put", argc - i ? "too many arguments (KEY [VALUE])" : "KEY is required");
    const char *key = argv[i];
    if (nonempty("put", "KEY", key) != 0)
        return EXIT_USAGE;
    unsigned char *stdin_value = NULL;
    const void *value;
    size_t len;
    if (argc - i == 2) {
        value = argv[i + 1];
        len = strlen(argv[i + 1]);
    } else {
        if (read_all(STDIN_FILENO, &stdin_value, &len) != 0) {
            int e = errno;
            say("put", key, "reading stdin: %s", strerror(e));
            return e == ENOMEM ? EXIT_OSERR : EXIT_IOERR;
        }
        value = stdin_value;
    }
    int rc = cli_open(cli);
    if (rc == 0) {
        lkv_err e;
        if (if_absent || (have_index && if_index == 0)) {
            e = lkv_atomic_put(cli->c, key, value, len, NULL, (unsigned)ttl, NULL);
        } else if (have_index) {
            lkv_pair prev = {.key = (char *)key, .index = if_index};
            e = lkv_atomic_put(cli->c, key, value, len, &prev, (unsigned)ttl, NULL);
        } else if (ctype) {
            e = lkv_put_ctype(cli->c, key, value, len, ctype, (unsigned)ttl);
        } else {
            e = lkv_put(cli->c, key, value, len, (unsigned)ttl);
        }
        rc = e == LKV_OK ? EXIT_DONE : fail(cli, "put", key, e);
    }
    free(stdin_value);
    return rc;
}

/* ---- rm ---------------------------------------------------------------------- */

/* The arguments of rm and watch: KEY, or --prefix P. -1 with *subject
 * set, or the exit code (--help, a usage error). */
static int key_or_prefix(const char *cmd, const char *help, int argc, char **argv,
                         const char **subject, int *is_prefix)
{
    enum { O_HELP, O_PREFIX };
    static const struct optdef defs[] = {
        [O_HELP] = {"help", 'h', 0}, [O_PREFIX] = {"prefix", 0, 1}, {NULL, 0, 0},
    };
    const char *prefix = NULL, *arg;
    int i = 1, k;
    while ((k = opt_next(cmd, argc, argv, &i, defs, &arg)) >= 0) {
        if (k == O_HELP) {
            fputs(help, stdout);
            return EXIT_DONE;
        }
        prefix = arg;
    }
    if (k == OPT_BAD)
        return EXIT_USAGE;
    if (prefix ? argc - i != 0 : argc - i != 1)
        return usage_error(cmd, prefix ? "either KEY or --prefix PREFIX"
                                : argc - i ? "one KEY only" : "KEY or --prefix PREFIX is required");
    *subject = prefix ? prefix : argv[i];
    *is_prefix = prefix != NULL;
    return -1;
}

static int cmd_rm(struct cli *cli, int argc, char **argv)
{
    const char *subject = "";
    int is_prefix = 0;
    int rc = key_or_prefix("rm", help_rm, argc, argv, &subject, &is_prefix);
    if (rc >= 0)
        return rc;
    const char *prefix = is_prefix ? subject : NULL;
    if (nonempty("rm", prefix ? "PREFIX" : "KEY", subject) != 0)
        return EXIT_USAGE;
    rc = cli_open(cli);
    if (rc != 0)
        return rc;
    lkv_err e = prefix ? lkv_delete_tree(cli->c, prefix) : lkv_delete(cli->c, subject);
    return e == LKV_OK ? EXIT_DONE : fail(cli, "rm", subject, e);
}

/* ---- ls ---------------------------------------------------------------------- */

/* "2026-11-29T16:40:00.123Z" for ms since the epoch (out: 25 bytes). */
static void format_instant(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, 32, "%" PRId64, ms);
        return;
    }
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static int cmd_ls(struct cli *cli, int argc, char **argv)
{
    enum { O_HELP, O_LONG };
    static const struct optdef defs[] = {
        [O_HELP] = {"help", 'h', 0}, [O_LONG] = {"long", 'l', 0}, {NULL, 0, 0},
    };
    const char *arg;
    int i = 1, k, longfmt = 0;
    while ((k = opt_next("ls", argc, argv, &i, defs, &arg)) >= 0) {
        if (k == O_HELP) {
            fputs(help_ls, stdout);
            return EXIT_DONE;
        }
        longfmt = 1;
    }
    if (k == OPT_BAD)
        return EXIT_USAGE;
    if (argc - i > 1)
        return usage_error("ls", "one PREFIX only");
    const char *prefix = argc - i == 1 ? argv[i] : "";
    int rc = cli_open(cli);
    if (rc != 0)
        return rc;
    lkv_pair **v = NULL;
    size_t n = 0;
    lkv_err e = lkv_list(cli->c, prefix, &v, &n);
    if (e != LKV_OK)
        return fail(cli, "ls", *prefix ? prefix : NULL, e);
    for (size_t j = 0; j < n; j++) {
        const lkv_pair *p = v[j];
        if (longfmt) {
            char when[32] = "-";
            if (p->expires_at_ms > 0)
                format_instant(p->expires_at_ms, when);
            printf("%" PRIu64 " %zu %s %s\n", p->index, p->value_len, when, p->key);
        } else {
            printf("%s\n", p->key);
        }
    }
    lkv_pairs_free(v, n);
    return finish_stdout("ls");
}

/* ---- watch: JSON lines ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (strict: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t j = 1; j < len; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t j = 0; j < n;) {
        size_t l = utf8_seq(s + j, n - j);
        if (l == 0)
            return 0;
        j += l;
    }
    return 1;
}

/* Writes s[0..n) (valid UTF-8) as a JSON string. */
static void json_string(FILE *f, const unsigned char *s, size_t n)
{
    fputc('"', f);
    for (size_t j = 0; j < n; j++) {
        unsigned char c = s[j];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void json_base64(FILE *f, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    for (size_t j = 0; j < n; j += 3) {
        uint32_t w = (uint32_t)s[j] << 16;
        if (j + 1 < n)
            w |= (uint32_t)s[j + 1] << 8;
        if (j + 2 < n)
            w |= s[j + 2];
        fputc(tab[(w >> 18) & 63], f);
        fputc(tab[(w >> 12) & 63], f);
        fputc(j + 1 < n ? tab[(w >> 6) & 63] : '=', f);
        fputc(j + 2 < n ? tab[w & 63] : '=', f);
    }
    fputc('"', f);
}

/* Writes "NAME":"TEXT" for a key or prefix; text that is not UTF-8 is
 * percent-encoded and followed by "NAME_encoding":"url". */
static void json_name(FILE *f, const char *name, const char *text)
{
    if (text == NULL)
        text = "";
    size_t n = strlen(text);
    fprintf(f, "\"%s\":", name);
    if (utf8_valid((const unsigned char *)text, n)) {
        json_string(f, (const unsigned char *)text, n);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
    fprintf(f, "\",\"%s_encoding\":\"url\"", name);
}

/* One pair as a JSON object (p == NULL: key is absent). */
static void json_pair(FILE *f, const char *key, const lkv_pair *p)
{
    fputc('{', f);
    json_name(f, "key", p ? p->key : key);
    if (p == NULL) {
        fputs(",\"deleted\":true}", f);
        return;
    }
    fprintf(f, ",\"index\":%" PRIu64 ",\"value\":", p->index);
    if (utf8_valid(p->value, p->value_len)) {
        json_string(f, p->value, p->value_len);
    } else {
        json_base64(f, p->value, p->value_len);
        fputs(",\"encoding\":\"base64\"", f);
    }
    fputs(",\"content_type\":", f);
    if (p->content_type)
        json_string(f, (const unsigned char *)p->content_type, strlen(p->content_type));
    else
        fputs("null", f);
    fputs(",\"expires_at\":", f);
    if (p->expires_at_ms > 0) {
        char when[32];
        format_instant(p->expires_at_ms, when);
        fprintf(f, "\"%s\"}", when);
    } else {
        fputs("null}", f);
    }
}

/* ---- watch: the thread and the signals ------------------------------------------ */

/* One watch, run on its own thread so that the main thread can always end
 * the program promptly on a signal, whatever the library is blocked in. */
struct watch_job {
    struct cli *cli;               /* ref */
    const char *subject;           /* ref: the key or the prefix */
    int tree;                      /* 1: subject is a prefix */
    volatile sig_atomic_t stop;    /* set by the main thread: lkv_watch's stop flag */
    pthread_mutex_t out_lock;      /* held while a line is written and flushed */
    int out_failed;                /* writing stdout failed (errno in out_errno) */
    int out_errno;
    lkv_err err;                   /* what lkv_watch returned */
    atomic_int done;               /* the thread is finished */
};

_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "lkv_watch's stop flag is an int");

/* Writes one line (a memstream's text) whole, and flushes it. 0, or 1 to
 * stop the watch when stdout failed. */
static int emit_line(struct watch_job *job, char *text, size_t len)
{
    pthread_mutex_lock(&job->out_lock);
    fwrite(text, 1, len, stdout);
    int bad = fflush(stdout) != 0 || ferror(stdout);
    if (bad && !job->out_failed) {
        job->out_failed = 1;
        job->out_errno = errno;
    }
    pthread_mutex_unlock(&job->out_lock);
    return bad;
}

static int on_key(const lkv_pair *p, void *arg)
{
    struct watch_job *job = arg;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return 1;
    json_pair(f, job->subject, p);
    fputc('\n', f);
    int rc = fclose(f) != 0 ? 1 : emit_line(job, text, len);
    free(text);
    return rc;
}

static int on_tree(lkv_pair *const *pairs, size_t n, void *arg)
{
    struct watch_job *job = arg;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return 1;
    fputc('{', f);
    json_name(f, "prefix", job->subject);
    fputs(",\"keys\":[", f);
    for (size_t j = 0; j < n; j++) {
        if (j)
            fputc(',', f);
        json_pair(f, NULL, pairs[j]);
    }
    fputs("]}\n", f);
    int rc = fclose(f) != 0 ? 1 : emit_line(job, text, len);
    free(text);
    return rc;
}

static void *watch_thread(void *arg)
{
    struct watch_job *job = arg;
    if (job->tree)
        job->err = lkv_watch_tree(job->cli->c, job->subject, on_tree, job, &job->stop);
    else
        job->err = lkv_watch(job->cli->c, job->subject, on_key, job, &job->stop);
    atomic_store(&job->done, 1);
    return NULL;
}

static int cmd_watch(struct cli *cli, int argc, char **argv)
{
    const char *subject = "";
    int is_prefix = 0;
    int rc = key_or_prefix("watch", help_watch, argc, argv, &subject, &is_prefix);
    if (rc >= 0)
        return rc;
    struct watch_job job = {.cli = cli, .subject = subject, .tree = is_prefix};
    if (nonempty("watch", is_prefix ? "PREFIX" : "KEY", job.subject) != 0)
        return EXIT_USAGE;
    rc = cli_open(cli);
    if (rc != 0)
        return rc;

    /* SIGINT, SIGTERM and SIGHUP stay pending for this thread (every other
     * thread inherits the mask), which takes them with sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    pthread_mutex_init(&job.out_lock, NULL);
    atomic_init(&job.done, 0);
    pthread_t tid;
    int perr = pthread_create(&tid, NULL, watch_thread, &job);
    if (perr != 0) {
        say("watch", job.subject, "cannot start a thread: %s", strerror(perr));
        return EXIT_OSERR;
    }
    int interrupted = 0;
    struct timespec tick = {0, 50000000L};
    long waited_ms = 0;
    while (!atomic_load(&job.done)) {
        int s = sigtimedwait(&sigs, NULL, &tick);
        if (s > 0 && !interrupted) {
            interrupted = 1;
            job.stop = 1;
        } else if (interrupted && (waited_ms += 50) >= WATCH_GRACE_MS) {
            /* the library did not return in time: end here, after a whole line */
            pthread_mutex_lock(&job.out_lock);
            fflush(stdout);
            _exit(job.out_failed ? EXIT_IOERR : EXIT_DONE);
        }
    }
    pthread_join(tid, NULL);
    pthread_mutex_destroy(&job.out_lock);
    if (job.out_failed) {
        say("watch", job.subject, "writing to stdout: %s", strerror(job.out_errno));
        return EXIT_IOERR;
    }
    if (interrupted || job.err == LKV_OK)
        return EXIT_DONE;
    return fail(cli, "watch", job.subject, job.err);
}

/* ---- lock -------------------------------------------------------------------- */

/* Signals passed on to COMMAND, and SIGCHLD; the handler only notes them. */
static const int lock_forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof(lock_forwarded) / sizeof(lock_forwarded[0]))
static volatile sig_atomic_t lock_pending[N_FORWARDED];

static void lock_on_signal(int sig)
{
    for (size_t j = 0; j < N_FORWARDED; j++)
        if (lock_forwarded[j] == sig)
            lock_pending[j] = 1;
    /* SIGCHLD: nothing to note; it only cuts the main loop's sleep short */
}

/* The environment for COMMAND: ours plus LAZYKV_LOCK_TOKEN=token (a fresh
 * array; its new string is owned by the caller through *owned). */
static char **child_env(uint64_t token, char **owned)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    if (env == NULL || asprintf(owned, "LAZYKV_LOCK_TOKEN=%" PRIu64, token) < 0) {
        free(env);
        return NULL;
    }
    size_t m = 0;
    for (size_t j = 0; j < n; j++)
        if (strncmp(environ[j], "LAZYKV_LOCK_TOKEN=", 18) != 0)
            env[m++] = environ[j];
    env[m++] = *owned;
    env[m] = NULL;
    return env;
}

/* Forks and execs argv with env; the child's pid, or -1 (errno set). A
 * COMMAND that cannot run exits 127 (not found) or 126, after one line
 * (built before the fork: the child only copies and writes). */
static pid_t spawn(const char *name, char **argv, char **env)
{
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL)
        return -1;
    fputs(PROG ": lock ", f);
    put_clean(f, name);
    fputs(": cannot run ", f);
    put_clean(f, argv[0]);
    fprintf(f, ": %200s", "");
    if (fclose(f) != 0) {
        free(line);
        errno = ENOMEM;
        return -1;
    }
    size_t pl = len - 200;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execvpe(argv[0], argv, env);
        int e = errno;
        /* strerror may take locks: not in a child of a threaded process */
        const char *why = strerrordesc_np(e);
        if (why == NULL)
            why = "cannot run it";
        size_t wl = strnlen(why, 198);
        memcpy(line + pl, why, wl);
        line[pl + wl] = '\n';
        ssize_t w = write(STDERR_FILENO, line, pl + wl + 1);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    int e = errno;
    free(line);
    errno = e;
    return pid;
}

/* The lock's body: runs COMMAND, renewing (the library does) and watching
 * the lock every LOCK_POLL_NS; returns the exit status. */
static int run_locked(lkv_lock *l, const char *name, unsigned ttl, char **cmdv)
{
    char *token_var = NULL;
    char **env = child_env(lkv_lock_token(l), &token_var);
    if (env == NULL) {
        say("lock", name, "out of memory");
        return EXIT_OSERR;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = lock_on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old[N_FORWARDED + 1];
    for (size_t j = 0; j < N_FORWARDED; j++) {
        /* A signal ignored by whoever started us (nohup) stays ignored. */
        sigaction(lock_forwarded[j], NULL, &old[j]);
        if (old[j].sa_handler != SIG_IGN)
            sigaction(lock_forwarded[j], &sa, NULL);
    }
    sigaction(SIGCHLD, &sa, &old[N_FORWARDED]);

    int rc, lost = 0, status = 0, waited = 1;
    pid_t pid = spawn(name, cmdv, env);
    if (pid < 0) {
        say("lock", name, "cannot fork: %s", strerror(errno));
        rc = EXIT_OSERR;
        goto out;
    }
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            say("lock", name, "waiting for COMMAND: %s", strerror(errno));
            waited = 0;
            break;
        }
        for (size_t j = 0; j < N_FORWARDED; j++) {
            if (lock_pending[j]) {
                lock_pending[j] = 0;
                kill(pid, lock_forwarded[j]);
            }
        }
        if (!lost && !lkv_lock_held(l)) {
            lost = 1;
            say("lock", name, "the lock may be lost (a renewal failed); sending SIGTERM to %s",
                cmdv[0]);
            kill(pid, SIGTERM);
        }
        struct timespec ts = {0, LOCK_POLL_NS};
        nanosleep(&ts, NULL);
    }
    if (!waited)
        rc = EXIT_OSERR;
    else if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        rc = 128 + WTERMSIG(status);
    else
        rc = EXIT_PROTOCOL;
    if (!lost && !lkv_lock_held(l)) {
        lost = 1;
        say("lock", name, "the lock may have been lost while %s ran (a renewal failed)", cmdv[0]);
    }
    if (lost) {
        if (rc == 0)
            rc = EXIT_NO;
    } else {
        lkv_err e = lkv_lock_release(l);
        if (e != LKV_OK)
            say("lock", name, "release failed (%s); the lock expires within %u s",
                lkv_strerror(e), ttl);
    }
out:
    for (size_t j = 0; j < N_FORWARDED; j++)
        sigaction(lock_forwarded[j], &old[j], NULL);
    sigaction(SIGCHLD, &old[N_FORWARDED], NULL);
    free(env);
    free(token_var);
    return rc;
}

static int cmd_lock(struct cli *cli, int argc, char **argv)
{
    enum { O_HELP, O_TTL, O_WAIT };
    static const struct optdef defs[] = {
        [O_HELP] = {"help", 'h', 0}, [O_TTL] = {"ttl", 0, 1}, [O_WAIT] = {"wait", 0, 1},
        {NULL, 0, 0},
    };
    uint64_t ttl = LOCK_TTL_DEFAULT, wait_s = 0;
    const char *name = NULL, *arg;
    int i = 1, k;
    /* NAME, then its options, then (after "--" or at the first word) COMMAND */
    for (;;) {
        k = opt_next("lock", argc, argv, &i, defs, &arg);
        if (k == OPT_BAD)
            return EXIT_USAGE;
        if (k == O_HELP) {
            fputs(help_lock, stdout);
            return EXIT_DONE;
        }
        if (k == O_TTL && parse_seconds("lock", "ttl", arg, 1, TTL_MAX, &ttl) != 0)
            return EXIT_USAGE;
        if (k == O_WAIT && parse_seconds("lock", "wait", arg, 0, TTL_MAX, &wait_s) != 0)
            return EXIT_USAGE;
        if (k == OPT_END || k == OPT_DASHDASH) {
            if (name == NULL && i < argc) {
                name = argv[i++];
                if (k == OPT_END)
                    continue;
            }
            break;
        }
    }
    if (name == NULL)
        return usage_error("lock", "NAME is required");
    if (nonempty("lock", "NAME", name) != 0)
        return EXIT_USAGE;
    if (i >= argc)
        return usage_error("lock", "COMMAND is required (lock NAME -- COMMAND [ARG...])");
    char **cmdv = argv + i;
    int rc = cli_open(cli);
    if (rc != 0)
        return rc;

    char host[256] = "localhost", *owner = NULL;
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    if (asprintf(&owner, "%s:%ld", host, (long)getpid()) < 0) {
        say("lock", name, "out of memory");
        return EXIT_OSERR;
    }
    lkv_lock *l = lkv_lock_new(cli->c, name, owner, strlen(owner), (unsigned)ttl);
    free(owner);
    if (l == NULL) {
        say("lock", name, "out of memory");
        return EXIT_OSERR;
    }
    lkv_err e = lkv_lock_acquire(l, (long)(wait_s * 1000));
    if (e == LKV_OK) {
        rc = run_locked(l, name, (unsigned)ttl, cmdv);
    } else if (e == LKV_ERR_CANNOT_LOCK || e == LKV_ERR_KEY_EXISTS) {
        if (wait_s)
            say("lock", name, "still held by another after %" PRIu64 " s", wait_s);
        else
            say("lock", name, "held by another");
        rc = EXIT_LOCKED;
    } else {
        rc = fail(cli, "lock", name, e);
    }
    lkv_lock_free(l);
    return rc;
}

/* ---- health ------------------------------------------------------------------ */

static int cmd_health(struct cli *cli, int argc, char **argv)
{
    int i = 1, done = help_only("health", help_health, argc, argv, &i);
    if (done >= 0)
        return done;
    if (i < argc)
        return usage_error("health", "no arguments expected");
    int rc = cli_open(cli);
    if (rc != 0)
        return rc;
    char *doc = NULL;
    lkv_err e = lkv_health(cli->c, &doc);
    if (doc) {
        size_t n = strlen(doc);
        fputs(doc, stdout);
        if (n == 0 || doc[n - 1] != '\n')
            fputc('\n', stdout);
        free(doc);
    }
    rc = finish_stdout("health");
    if (e != LKV_OK)
        return fail(cli, "health", NULL, e);
    return rc;
}

/* ---- main -------------------------------------------------------------------- */

static const struct command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
} commands[] = {
    {"get", cmd_get},   {"put", cmd_put},     {"rm", cmd_rm},         {"ls", cmd_ls},
    {"watch", cmd_watch}, {"lock", cmd_lock}, {"health", cmd_health}, {NULL, NULL},
};

int main(int argc, char **argv)
{
    enum { O_HELP, O_ENDPOINTS, O_TOKEN, O_CACERT, O_CERT, O_KEY, O_LAZY, O_TIMEOUT };
    static const struct optdef defs[] = {
        [O_HELP] = {"help", 'h', 0},          [O_ENDPOINTS] = {"endpoints", 'e', 1},
        [O_TOKEN] = {"token", 0, 1},          [O_CACERT] = {"cacert", 0, 1},
        [O_CERT] = {"cert", 0, 1},            [O_KEY] = {"key", 0, 1},
        [O_LAZY] = {"lazy", 0, 0},            [O_TIMEOUT] = {"timeout", 0, 1},
        {NULL, 0, 0},
    };
    struct cli cli = {0};
    const char *env_endpoints = getenv("LAZYKV_ENDPOINTS"), *env_token = getenv("LAZYKV_TOKEN");
    cli.endpoints = env_endpoints && *env_endpoints ? env_endpoints : DEFAULT_ENDPOINTS;
    cli.opt.token = env_token && *env_token ? env_token : NULL;
    const char *arg;
    uint64_t timeout_s;
    int i = 1, k;
    while ((k = opt_next(NULL, argc, argv, &i, defs, &arg)) >= 0) {
        switch (k) {
        case O_HELP: fputs(help_main, stdout); return EXIT_DONE;
        case O_ENDPOINTS: cli.endpoints = arg; break;
        case O_TOKEN: cli.opt.token = *arg ? arg : NULL; break;
        case O_CACERT: cli.opt.ca_file = arg; break;
        case O_CERT: cli.opt.cert_file = arg; break;
        case O_KEY: cli.opt.key_file = arg; break;
        case O_LAZY: cli.opt.lazy = 1; break;
        case O_TIMEOUT:
            if (parse_u64(arg, 1, 86400, &timeout_s) != 0)
                return usage_error(NULL, "--timeout must be a whole number of seconds from 1 to "
                                   "86400, got '%s'", arg);
            cli.opt.timeout_ms = (long)timeout_s * 1000;
            break;
        }
    }
    if (k == OPT_BAD)
        return EXIT_USAGE;
    if (!cli.opt.cert_file != !cli.opt.key_file)
        return usage_error(NULL, "--cert and --key go together");
    if (i >= argc)
        return usage_error(NULL, "COMMAND is required");
    const struct command *cmd = commands;
    while (cmd->name && strcmp(cmd->name, argv[i]) != 0)
        cmd++;
    if (cmd->name == NULL)
        return usage_error(NULL, "unknown command '%s'", argv[i]);
    int rc = cmd->run(&cli, argc - i, argv + i);
    if (cli.c)
        lkv_close(cli.c);
    return rc;
}
