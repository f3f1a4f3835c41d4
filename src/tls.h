/*
 * tls.h -- lazykvd's HTTPS credentials ([server] tls_cert, tls_key,
 * tls_client_ca, tls_priorities): read and checked once at start-up, so a
 * bad file stops lazykvd with one line instead of failing every handshake;
 * and the client-certificate check of mutual TLS.
 *
 * libmicrohttpd (built on GnuTLS) does the handshakes. Given a trust list it
 * only *requests* a client certificate (daemon.c: GNUTLS_CERT_REQUEST), so a
 * client without one, or with one from another CA, completes the handshake:
 * tls_client_verified() is what refuses it, before its first request is
 * looked at.
 */
#ifndef LKV_TLS_H
#define LKV_TLS_H

#include <stddef.h>

#include "config.h"

struct tls_server {
    char *cert_pem;        /* owned, NUL-terminated: what MHD_OPTION_HTTPS_MEM_CERT takes */
    char *key_pem;         /* owned; wiped before it is freed */
    char *client_ca_pem;   /* owned, or NULL: no mutual TLS */
    char subject[512];     /* the certificate's subject DN (RFC 4514) */
    char expires[32];      /* its notAfter, RFC 3339 UTC */
};

/* Reads and checks cfg's TLS files: each readable, the key not readable by
 * others, the certificate and key PEM and matching, the CA file holding at
 * least one certificate, the priority string valid. 0, or -1 with one
 * line in err naming the key and file. Leaves t zeroed when cfg has no
 * tls_cert. */
int tls_server_load(struct tls_server *t, const struct lkv_config *cfg, char *err, size_t errlen);

void tls_server_free(struct tls_server *t);

/* 1 when the TLS session (a gnutls_session_t, from libmicrohttpd) carries a
 * client certificate that verifies against the daemon's trust list; else 0. */
int tls_client_verified(void *session);

#endif
