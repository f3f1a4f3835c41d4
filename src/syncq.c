/*
 * syncq.c -- a source's batches, shared by the targets. See syncq.h.
 */
#include "syncq.h"

#include <string.h>

static uint64_t bit(int c)
{
    return (uint64_t)1 << c;
}

void syncq_init(struct syncq *q, pthread_mutex_t *mu, pthread_cond_t *cv, uint64_t consumers)
{
    memset(q, 0, sizeof(*q));
    q->mu = mu;
    q->cv = cv;
    q->consumers = consumers;
}

void syncq_free(struct syncq *q)
{
    for (int i = 0; i < SYNCQ_DEPTH; i++)
        batch_free(&q->slot[i].b);
}

struct batch *syncq_reserve(struct syncq *q)
{
    struct syncq_slot *s = &q->slot[q->produced % SYNCQ_DEPTH];
    while (q->consumers != 0 && s->waiting != 0)
        pthread_cond_wait(q->cv, q->mu);
    if (q->consumers == 0)
        return NULL;
    batch_clear(&s->b);
    return &s->b;
}

void syncq_publish(struct syncq *q)
{
    q->slot[q->produced % SYNCQ_DEPTH].waiting = q->consumers;
    q->produced++;
    pthread_cond_broadcast(q->cv);
}

void syncq_end(struct syncq *q)
{
    q->ended = 1;
    pthread_cond_broadcast(q->cv);
}

const struct batch *syncq_peek(struct syncq *q, int c, int *over)
{
    *over = 0;
    if (!(q->consumers & bit(c))) {
        *over = 1;
        return NULL;
    }
    if (q->next[c] < q->produced)
        return &q->slot[q->next[c] % SYNCQ_DEPTH].b;
    *over = q->ended;
    return NULL;
}

void syncq_release(struct syncq *q, int c)
{
    struct syncq_slot *s = &q->slot[q->next[c] % SYNCQ_DEPTH];
    s->waiting &= ~bit(c);
    q->next[c]++;
    if (s->waiting == 0)
        pthread_cond_broadcast(q->cv);
}

void syncq_leave(struct syncq *q, int c)
{
    q->consumers &= ~bit(c);
    for (int i = 0; i < SYNCQ_DEPTH; i++)
        q->slot[i].waiting &= ~bit(c);
    pthread_cond_broadcast(q->cv);
}
