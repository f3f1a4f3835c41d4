/*
 * chunks.c -- the arithmetic of chunked values. See chunks.h (the design).
 */
#include "chunks.h"

#include "store.h"

/* A multi-row statement has at most this many rows (lane writes and copies
 * carry 16, the sync's applies up to STORE_MANY_MAX): chunks_packet_min()
 * counts that many keys. */
#define CHUNKS_STATEMENT_ROWS STORE_MANY_MAX
/* Bytes of a row besides its key and content type: its numbers, the digest,
 * and the binary protocol's type and length prefixes (generous). */
#define CHUNKS_ROW_OVERHEAD 128
/* The statement's text and the packet headers (a 16-row upsert's text is a
 * few KiB). */
#define CHUNKS_PACKET_SLACK (64u << 10)

_Static_assert(STORE_MANY_MAX <= CHUNKS_STATEMENT_ROWS, "the packet bound counts every row");
_Static_assert(CHUNKS_INLINE_MAX <= CHUNKS_STATEMENT_BYTES, "an inline value fits one statement");
_Static_assert(CHUNKS_VALUE_MAX / CHUNKS_SIZE <= UINT32_MAX, "chunk numbers fit n");

uint32_t chunks_count(uint64_t len)
{
    if (chunks_inline(len))
        return 0;
    return (uint32_t)((len + CHUNKS_SIZE - 1) / CHUNKS_SIZE);
}

uint32_t chunks_len(uint64_t len, uint32_t n)
{
    uint32_t count = chunks_count(len);
    if (n >= count)
        return 0;
    if (n + 1 < count)
        return CHUNKS_SIZE;
    return (uint32_t)(len - (uint64_t)n * CHUNKS_SIZE);
}

void chunks_span(const struct byte_range *r, struct chunks_span *out)
{
    out->first = (uint32_t)(r->first / CHUNKS_SIZE);
    out->last = (uint32_t)(r->last / CHUNKS_SIZE);
    out->skip = (uint32_t)(r->first % CHUNKS_SIZE);
    out->keep = (uint32_t)(r->last % CHUNKS_SIZE) + 1;
}

uint64_t chunks_packet_min(int key_length)
{
    uint64_t row = (uint64_t)key_length + STORE_CTYPE_MAX + CHUNKS_ROW_OVERHEAD;
    return CHUNKS_STATEMENT_BYTES + CHUNKS_STATEMENT_ROWS * row + CHUNKS_PACKET_SLACK;
}
