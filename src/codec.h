/*
 * codec.h -- byte-level encodings used at the HTTP edge. Pure functions:
 * percent-encoding (RFC 3986), base64 (RFC 4648), UTF-8 validation, and
 * escaping for XML/HTML text. They take untrusted input of any length and
 * bytes, and are fuzzed (tests/fuzz).
 */
#ifndef LKV_CODEC_H
#define LKV_CODEC_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* Decodes len bytes of percent-encoded text into out, which must hold len
 * bytes (decoding never grows). With plus_is_space, '+' decodes to ' ' (query
 * strings); otherwise it stays '+' (paths). Returns the decoded length, or -1
 * when a '%' is not followed by two hex digits. Decoded NUL bytes are kept:
 * callers that forbid them check with memchr. */
ssize_t codec_pct_decode(const char *in, size_t len, char *out, int plus_is_space);

/* Percent-encodes every byte except RFC 3986 unreserved ones (and '/' when
 * keep_slash), appending to out. 0, or -1 when out of memory. */
int codec_pct_encode(struct buf *out, const void *in, size_t len, int keep_slash);

/* Appends the base64 (with padding) of len bytes. 0 or -1. */
int codec_base64_encode(struct buf *out, const void *in, size_t len);

/* 1 when the bytes are well-formed UTF-8 (no overlongs, no surrogates, no
 * code point above U+10FFFF), else 0. NUL bytes are valid UTF-8. */
int codec_utf8_valid(const void *in, size_t len);

/* Appends text escaped for XML and HTML character data and attribute values
 * (& < > " '). Bytes that XML 1.0 cannot carry (controls other than tab, LF,
 * CR) are written as U+FFFD. 0 or -1. */
int codec_escape_markup(struct buf *out, const char *in, size_t len);

#endif
