/*
 * rcache.c -- a bounded LRU map from key to value. See rcache.h.
 */
#include "rcache.h"

#include <stdlib.h>
#include <string.h>

#include "placement.h"

/* One key: a value (valid), or only the stamp of its last invalidation. */
struct rcache_entry {
    struct rcache_entry *chain;      /* next in the hash bucket */
    struct rcache_entry *prev, *next; /* LRU order */
    uint64_t hash;
    uint64_t born_us;                /* when the value was read */
    uint64_t invalidated;            /* stamp of the last write, or 0 */
    int valid;                       /* holds a value */
    int partition;                   /* that answered the read */
    uint64_t version;
    size_t key_len, value_len;
    size_t bytes;                    /* charged against max_bytes */
    char ctype[STORE_CTYPE_MAX + 1];
    int has_digest;
    unsigned char digest[32];
    char *value;                     /* owned, when valid */
    char key[];                      /* key_len bytes */
};

int rcache_init(struct rcache *rc, uint64_t ttl_us, size_t max_bytes)
{
    memset(rc, 0, sizeof(*rc));
    rc->ttl_us = ttl_us;
    rc->max_bytes = max_bytes;
    if (ttl_us == 0)
        return 0;
    rc->nbuckets = 1u << 14;
    rc->bucket = calloc(rc->nbuckets, sizeof(struct rcache_entry *));
    return rc->bucket ? 0 : -1;
}

int rcache_enabled(const struct rcache *rc)
{
    return rc->bucket != NULL;
}

static void entry_free(struct rcache_entry *e)
{
    free(e->value);
    free(e);
}

void rcache_free(struct rcache *rc)
{
    struct rcache_entry *e = rc->lru_head;
    while (e) {
        struct rcache_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    free(rc->bucket);
    memset(rc, 0, sizeof(*rc));
}

uint64_t rcache_stamp(struct rcache *rc)
{
    return ++rc->seq;
}

static struct rcache_entry **find(struct rcache *rc, const char *key, size_t len, uint64_t h)
{
    struct rcache_entry **link = &rc->bucket[h & (rc->nbuckets - 1)];
    while (*link && !((*link)->hash == h && (*link)->key_len == len &&
                      memcmp((*link)->key, key, len) == 0))
        link = &(*link)->chain;
    return link;
}

static void lru_unlink(struct rcache *rc, struct rcache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        rc->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        rc->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct rcache *rc, struct rcache_entry *e)
{
    e->prev = NULL;
    e->next = rc->lru_head;
    if (rc->lru_head)
        rc->lru_head->prev = e;
    rc->lru_head = e;
    if (rc->lru_tail == NULL)
        rc->lru_tail = e;
}

static void clear_value(struct rcache *rc, struct rcache_entry *e)
{
    if (!e->valid)
        return;
    rc->bytes -= e->value_len;
    free(e->value);
    e->value = NULL;
    e->valid = 0;
}

static void drop(struct rcache *rc, struct rcache_entry *e)
{
    if (e->invalidated > rc->floor)
        rc->floor = e->invalidated; /* its stamp must still hold */
    struct rcache_entry **link = find(rc, e->key, e->key_len, e->hash);
    *link = e->chain;
    lru_unlink(rc, e);
    clear_value(rc, e);
    rc->bytes -= e->bytes;
    entry_free(e);
}

/* Drops the least recently used entries until extra more bytes fit. */
static void make_room(struct rcache *rc, size_t extra)
{
    /* drop() unlinks the tail before freeing it, so lru_tail is never a
     * freed entry (the analyser cannot follow that through lru_unlink). */
    while (rc->lru_tail && rc->bytes + extra > rc->max_bytes) // NOLINT(clang-analyzer-unix.Malloc)
        drop(rc, rc->lru_tail); // NOLINT(clang-analyzer-unix.Malloc)
}

/* The key's entry, created (without a value) if need be; NULL when out of
 * memory or it cannot fit. */
static struct rcache_entry *entry_for(struct rcache *rc, const char *key, size_t len, uint64_t h)
{
    struct rcache_entry *found = *find(rc, key, len, h);
    if (found)
        return found;
    size_t bytes = sizeof(struct rcache_entry) + len;
    if (bytes > rc->max_bytes)
        return NULL;
    make_room(rc, bytes);
    struct rcache_entry *e = calloc(1, bytes);
    if (e == NULL)
        return NULL;
    e->hash = h;
    e->key_len = len;
    memcpy(e->key, key, len);
    e->bytes = bytes;
    struct rcache_entry **link = find(rc, key, len, h); /* make_room changed chains */
    e->chain = *link;
    *link = e;
    lru_push(rc, e);
    rc->bytes += bytes;
    return e;
}

int rcache_get(struct rcache *rc, const char *key, size_t len, uint64_t now_us,
               struct record *out, int *partition)
{
    if (!rcache_enabled(rc))
        return 0;
    uint64_t h = placement_hash64(key, len);
    struct rcache_entry *e = *find(rc, key, len, h);
    if (e == NULL || !e->valid)
        return 0;
    if (now_us - e->born_us >= rc->ttl_us) {
        clear_value(rc, e);
        return 0;
    }
    char *copy = malloc(e->value_len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, e->value, e->value_len);
    copy[e->value_len] = '\0';
    out->value = copy;
    out->value_len = e->value_len;
    memcpy(out->ctype, e->ctype, sizeof(out->ctype));
    out->has_digest = e->has_digest;
    memcpy(out->digest, e->digest, sizeof(out->digest));
    out->version = e->version;
    out->deleted = 0;
    *partition = e->partition;
    lru_unlink(rc, e);
    lru_push(rc, e);
    return 1;
}

void rcache_put(struct rcache *rc, const struct record *rec, int partition, uint64_t stamp,
                uint64_t read_us)
{
    if (!rcache_enabled(rc) || rec->deleted || rec->value == NULL)
        return;
    uint64_t h = placement_hash64(rec->key, rec->key_len);
    struct rcache_entry *e = *find(rc, rec->key, rec->key_len, h);
    if (stamp < rc->floor || (e && e->invalidated > stamp))
        return; /* written while this read was in flight */
    size_t need = sizeof(struct rcache_entry) + rec->key_len + rec->value_len;
    if (need > rc->max_bytes)
        return;
    /* Room for a whole entry first (this may evict the key's own entry),
     * then the entry is looked up again. */
    make_room(rc, need);
    if (stamp < rc->floor)
        return; /* an eviction forgot an invalidation this read may predate */
    if ((e = entry_for(rc, rec->key, rec->key_len, h)) == NULL)
        return;
    clear_value(rc, e);
    lru_unlink(rc, e);
    lru_push(rc, e);
    e->value = malloc(rec->value_len + 1);
    if (e->value == NULL)
        return;
    memcpy(e->value, rec->value, rec->value_len);
    e->value_len = rec->value_len;
    e->valid = 1;
    rc->bytes += rec->value_len;
    memcpy(e->ctype, rec->ctype, sizeof(e->ctype));
    e->has_digest = rec->has_digest;
    memcpy(e->digest, rec->digest, sizeof(e->digest));
    e->version = rec->version;
    e->partition = partition;
    e->born_us = read_us;
}

void rcache_invalidate(struct rcache *rc, const char *key, size_t len)
{
    if (!rcache_enabled(rc))
        return;
    uint64_t h = placement_hash64(key, len);
    struct rcache_entry *e = entry_for(rc, key, len, h);
    if (e == NULL) {
        rc->floor = rcache_stamp(rc); /* cannot remember it: refuse all in flight */
        return;
    }
    clear_value(rc, e);
    e->invalidated = rcache_stamp(rc);
}
