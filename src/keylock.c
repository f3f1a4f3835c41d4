/*
 * keylock.c -- striped per-key write locks. See keylock.h.
 */
#include "keylock.h"

#include <stdlib.h>

#include "placement.h"

int keylocks_init(struct keylocks *kl, int partitions)
{
    size_t n = (size_t)partitions * KEYLOCK_STRIPES;
    kl->partitions = 0;
    kl->stripe = malloc(n * sizeof(*kl->stripe));
    if (kl->stripe == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        pthread_mutex_init(&kl->stripe[i], NULL); /* cannot fail with default attributes */
    kl->partitions = partitions;
    return 0;
}

void keylocks_destroy(struct keylocks *kl)
{
    size_t n = (size_t)kl->partitions * KEYLOCK_STRIPES;
    for (size_t i = 0; i < n; i++)
        pthread_mutex_destroy(&kl->stripe[i]);
    free(kl->stripe);
    kl->stripe = NULL;
    kl->partitions = 0;
}

pthread_mutex_t *keylock_of(struct keylocks *kl, int master, const char *key, size_t len)
{
    /* The high bits: placement_jump() draws the partition from the whole
     * hash, the stripe from bits it barely weighs. */
    uint64_t h = placement_hash64(key, len);
    size_t stripe = (size_t)(h >> 40) % KEYLOCK_STRIPES;
    return &kl->stripe[(size_t)master * KEYLOCK_STRIPES + stripe];
}
