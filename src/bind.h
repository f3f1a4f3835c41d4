/*
 * bind.h -- filling MYSQL_BIND entries: the parameters and result columns
 * of prepared statements (store.c, lane.c). Each helper fills one entry.
 */
#ifndef LKV_BIND_H
#define LKV_BIND_H

#include <mysql.h>
#include <stdint.h>
#include <string.h>

/* A parameter of len bytes at data; *lenp holds the length for the call. */
static inline void bind_blob(MYSQL_BIND *b, const void *data, size_t len, unsigned long *lenp)
{
    memset(b, 0, sizeof(*b));
    *lenp = (unsigned long)len;
    b->buffer_type = MYSQL_TYPE_BLOB;
    b->buffer = (void *)data;
    b->buffer_length = (unsigned long)len;
    b->length = lenp;
}

static inline void bind_u64(MYSQL_BIND *b, uint64_t *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_unsigned = 1;
}

/* v as a parameter, or SQL NULL when v is 0 (an absent expiry). */
static inline void bind_u64_or_null(MYSQL_BIND *b, uint64_t *v)
{
    bind_u64(b, v);
    if (*v == 0)
        b->buffer_type = MYSQL_TYPE_NULL;
}

static inline void bind_u32(MYSQL_BIND *b, uint32_t *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONG;
    b->buffer = v;
    b->is_unsigned = 1;
}

static inline void bind_int(MYSQL_BIND *b, int *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONG;
    b->buffer = v;
}

/* A parameter of len bytes at data, or SQL NULL when !present. */
static inline void bind_blob_or_null(MYSQL_BIND *b, const void *data, size_t len,
                                     unsigned long *lenp, int present)
{
    bind_blob(b, data, len, lenp);
    if (!present)
        b->buffer_type = MYSQL_TYPE_NULL;
}

/* A result column read into buf (cap bytes), its length into *len. A cap
 * of 0 only learns the length (the column is then fetched on its own with
 * mysql_stmt_fetch_column). */
static inline void bind_out(MYSQL_BIND *b, enum enum_field_types type, void *buf,
                            unsigned long cap, unsigned long *len)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = type;
    b->buffer = buf;
    b->buffer_length = cap;
    b->length = len;
}

/* A BIGINT UNSIGNED result column that may be NULL (*is_null says). */
static inline void bind_u64_out(MYSQL_BIND *b, uint64_t *v, my_bool *is_null)
{
    bind_u64(b, v);
    b->is_null = is_null;
}

/* A BINARY(n) result column that may be NULL, read into buf (cap bytes). */
static inline void bind_bytes_out(MYSQL_BIND *b, void *buf, unsigned long cap,
                                  unsigned long *len, my_bool *is_null)
{
    bind_out(b, MYSQL_TYPE_BLOB, buf, cap, len);
    b->is_null = is_null;
}

#endif
