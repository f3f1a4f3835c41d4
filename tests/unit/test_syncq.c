/* syncq: the bounded queue of batches between a sync reader and its
 * targets' appliers: stream order, the two-slot bound, consumers leaving. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "syncq.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* Publishes a batch whose bytes field carries its number. */
static int produce(struct syncq *q, size_t number)
{
    struct batch *b = syncq_reserve(q);
    if (b == NULL)
        return -1;
    b->bytes = number;
    syncq_publish(q);
    return 0;
}

START_TEST(peek_release_in_order)
{
    struct syncq q;
    int over = 0;
    syncq_init(&q, &mu, &cv, 0x6); /* consumers 1 and 2 */
    pthread_mutex_lock(&mu);
    ck_assert_ptr_null(syncq_peek(&q, 1, &over));
    ck_assert_int_eq(over, 0);
    ck_assert_int_eq(produce(&q, 7), 0);
    ck_assert_int_eq(produce(&q, 8), 0);
    ck_assert_uint_eq(syncq_peek(&q, 1, &over)->bytes, 7);
    syncq_release(&q, 1);
    ck_assert_uint_eq(syncq_peek(&q, 1, &over)->bytes, 8);
    ck_assert_uint_eq(syncq_peek(&q, 2, &over)->bytes, 7);
    /* consumer 0 was never one: its stream is over */
    ck_assert_ptr_null(syncq_peek(&q, 0, &over));
    ck_assert_int_eq(over, 1);
    syncq_release(&q, 2);   /* slot of 7 free: a third batch fits */
    ck_assert_int_eq(produce(&q, 9), 0);
    syncq_end(&q);
    syncq_release(&q, 1);
    ck_assert_uint_eq(syncq_peek(&q, 1, &over)->bytes, 9);
    syncq_release(&q, 1);
    ck_assert_ptr_null(syncq_peek(&q, 1, &over));
    ck_assert_int_eq(over, 1);
    pthread_mutex_unlock(&mu);
    syncq_free(&q);
}
END_TEST

START_TEST(leaving_frees_slots_and_the_reader)
{
    struct syncq q;
    int over = 0;
    syncq_init(&q, &mu, &cv, 0x3);
    pthread_mutex_lock(&mu);
    produce(&q, 1);
    produce(&q, 2);
    syncq_release(&q, 0);
    syncq_release(&q, 0);
    /* consumer 1 holds both slots; it leaves: the reader may go on */
    syncq_leave(&q, 1);
    ck_assert_int_eq(produce(&q, 3), 0);
    ck_assert_ptr_null(syncq_peek(&q, 1, &over));
    ck_assert_int_eq(over, 1);
    syncq_leave(&q, 0);
    /* nobody left: the reader is told to stop, without waiting */
    ck_assert_ptr_null(syncq_reserve(&q));
    pthread_mutex_unlock(&mu);
    syncq_free(&q);
}
END_TEST

#define BATCHES 2000
#define CONSUMERS 3

struct consumer {
    struct syncq *q;
    int c;
    size_t seen;          /* batches taken, each checked to be the next number */
    int in_order;
    size_t leave_after;   /* 0: never */
};

static void *consume(void *arg)
{
    struct consumer *k = arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        int over = 0;
        const struct batch *b = syncq_peek(k->q, k->c, &over);
        if (b == NULL && over)
            break;
        if (b == NULL) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        k->in_order &= b->bytes == k->seen;
        k->seen++;
        syncq_release(k->q, k->c);
        if (k->leave_after && k->seen == k->leave_after) {
            syncq_leave(k->q, k->c);
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

START_TEST(threads_see_every_batch_in_order)
{
    struct syncq q;
    struct consumer k[CONSUMERS];
    pthread_t t[CONSUMERS];
    syncq_init(&q, &mu, &cv, (1u << CONSUMERS) - 1);
    for (int i = 0; i < CONSUMERS; i++) {
        k[i] = (struct consumer){&q, i, 0, 1, i == 2 ? BATCHES / 3 : 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, consume, &k[i]), 0);
    }
    pthread_mutex_lock(&mu);
    for (size_t n = 0; n < BATCHES; n++) {
        ck_assert_int_eq(produce(&q, n), 0);
        /* never more than two batches ahead of a consumer still there */
        for (int i = 0; i < CONSUMERS; i++)
            if (q.consumers >> i & 1)
                ck_assert_uint_le(q.produced - q.next[i], SYNCQ_DEPTH);
    }
    syncq_end(&q);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(k[i].in_order, 1);
        ck_assert_uint_eq(k[i].seen, i == 2 ? BATCHES / 3 : BATCHES);
    }
    syncq_free(&q);
}
END_TEST

Suite *syncq_suite(void);
Suite *syncq_suite(void)
{
    Suite *s = suite_create("syncq");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, peek_release_in_order);
    tcase_add_test(tc, leaving_frees_slots_and_the_reader);
    tcase_add_test(tc, threads_see_every_batch_in_order);
    suite_add_tcase(s, tc);
    return s;
}
