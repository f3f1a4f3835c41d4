/*
 * tls.c -- HTTPS credentials and the client-certificate check. See tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define PEM_MAX (1 << 20) /* bytes: a chain of certificates is a few KiB */

/* Reads a PEM file of [server] key into a NUL-terminated allocation. A
 * private key (secret) must not be readable by others. */
static char *read_pem(const char *key, const char *path, int secret, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "[server] %s: cannot read %s: %s", key, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (secret && (st.st_mode & S_IROTH)) {
        snprintf(err, errlen, "[server] %s: %s is readable by others (chmod o-r)", key, path);
        close(fd);
        return NULL;
    }
    struct buf b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0 && b.len + (size_t)n > PEM_MAX) {
            n = -1;
            errno = EFBIG;
            break;
        }
        if (n > 0 && buf_append(&b, chunk, (size_t)n) != 0) {
            n = -1;
            errno = ENOMEM;
            break;
        }
    }
    int saved = errno;
    close(fd);
    if (n < 0 || b.len == 0) {
        snprintf(err, errlen, "[server] %s: cannot read %s: %s", key, path,
                 n < 0 ? strerror(saved) : "the file is empty");
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

static gnutls_datum_t datum_of(const char *pem)
{
    gnutls_datum_t d = {(unsigned char *)pem, pem ? (unsigned)strlen(pem) : 0};
    return d;
}

/* Parses the first certificate of cert_pem and records its subject and
 * expiry for `lazykvd -t`. */
static int describe_cert(struct tls_server *t, const struct lkv_config *cfg, char *err,
                         size_t errlen)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t pem = datum_of(t->cert_pem), dn = {NULL, 0};
    if (gnutls_x509_crt_init(&crt) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM);
    if (rc != 0) {
        snprintf(err, errlen, "[server] tls_cert: %s is not a PEM certificate: %s", cfg->tls_cert,
                 gnutls_strerror(rc));
        gnutls_x509_crt_deinit(crt);
        return -1;
    }
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        snprintf(t->subject, sizeof(t->subject), "%.*s", (int)dn.size, (const char *)dn.data);
        gnutls_free(dn.data);
    }
    time_t until = gnutls_x509_crt_get_expiration_time(crt);
    struct tm tm;
    if (until != (time_t)-1 && gmtime_r(&until, &tm))
        strftime(t->expires, sizeof(t->expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
    gnutls_x509_crt_deinit(crt);
    return 0;
}

/* The key parses, and belongs to the certificate (GnuTLS compares their
 * public keys when both are loaded together). */
static int check_pair(const struct tls_server *t, const struct lkv_config *cfg, char *err,
                      size_t errlen)
{
    gnutls_x509_privkey_t key;
    gnutls_datum_t kd = datum_of(t->key_pem), cd = datum_of(t->cert_pem);
    if (gnutls_x509_privkey_init(&key) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc != 0) {
        snprintf(err, errlen, "[server] tls_key: %s is not a PEM private key (or it is"
                              " encrypted): %s", cfg->tls_key, gnutls_strerror(rc));
        return -1;
    }
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc == 0 && t->client_ca_pem) {
        gnutls_datum_t ca = datum_of(t->client_ca_pem);
        int n = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (n <= 0) {
            snprintf(err, errlen, "[server] tls_client_ca: %s holds no PEM certificate%s%s",
                     cfg->tls_client_ca, n < 0 ? ": " : "", n < 0 ? gnutls_strerror(n) : "");
            gnutls_certificate_free_credentials(cred);
            return -1;
        }
    }
    gnutls_certificate_free_credentials(cred);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
        snprintf(err, errlen, "[server] tls_cert and tls_key do not match: %s is not the key of %s",
                 cfg->tls_key, cfg->tls_cert);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "[server] tls_cert: %s cannot be used with %s: %s", cfg->tls_cert,
                 cfg->tls_key, gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

static int check_priorities(const struct lkv_config *cfg, char *err, size_t errlen)
{
    gnutls_priority_t prio;
    const char *where = NULL;
    int rc = gnutls_priority_init(&prio, cfg->tls_priorities, &where);
    if (rc != 0) {
        snprintf(err, errlen, "[server] tls_priorities: not a valid GnuTLS priority string"
                              " (at '%s'): %s", where ? where : "", gnutls_strerror(rc));
        return -1;
    }
    gnutls_priority_deinit(prio);
    return 0;
}

int tls_server_load(struct tls_server *t, const struct lkv_config *cfg, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (cfg->tls_cert == NULL)
        return 0;
    t->cert_pem = read_pem("tls_cert", cfg->tls_cert, 0, err, errlen);
    if (t->cert_pem)
        t->key_pem = read_pem("tls_key", cfg->tls_key, 1, err, errlen);
    if (t->key_pem && cfg->tls_client_ca)
        t->client_ca_pem = read_pem("tls_client_ca", cfg->tls_client_ca, 0, err, errlen);
    if (t->key_pem == NULL || (cfg->tls_client_ca && t->client_ca_pem == NULL) ||
        describe_cert(t, cfg, err, errlen) != 0 || check_pair(t, cfg, err, errlen) != 0 ||
        check_priorities(cfg, err, errlen) != 0) {
        tls_server_free(t);
        return -1;
    }
    return 0;
}

void tls_server_free(struct tls_server *t)
{
    if (t->key_pem) {
        explicit_bzero(t->key_pem, strlen(t->key_pem));
        free(t->key_pem);
    }
    free(t->cert_pem);
    free(t->client_ca_pem);
    memset(t, 0, sizeof(*t));
}

int tls_client_verified(void *session)
{
    unsigned status = 0;
    unsigned n = 0;
    if (session == NULL || gnutls_certificate_get_peers(session, &n) == NULL || n == 0)
        return 0; /* no certificate presented */
    return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}
