/*
 * lkv.h -- what every lazykv module shares: the status codes that functions
 * return, and the version string.
 *
 * Functions that can fail return an enum lkv_status. The HTTP layer maps it to
 * a status code in exactly one place (http_status_of() in handlers.c), so a
 * client fault (LKV_EBADREQ) and a backend fault (LKV_EUNAVAIL) never blur.
 */
#ifndef LKV_H
#define LKV_H

#define LKV_VERSION "0.1.0"

enum lkv_status {
    LKV_OK = 0,
    LKV_EBADREQ,    /* the client sent something invalid (400) */
    LKV_ENOTFOUND,  /* no such key, or it is deleted (404) */
    LKV_EPRECOND,   /* If-Match / If-None-Match did not hold (412) */
    LKV_ETOOLARGE,  /* body over max_value_size (413) */
    LKV_EUNAVAIL,   /* a partition could not be reached or timed out (503) */
    LKV_ENOMEM,     /* an allocation failed (503: transient) */
    LKV_EINTERNAL   /* a bug or an unexpected server answer (500) */
};

#endif
