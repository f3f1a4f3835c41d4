/*
 * watch.h -- requests that wait for a change: key watches (GET ?index=N),
 * prefix watches (a list with ?index=TOKEN) and blocking lock acquisitions
 * (PUT ?ttl=N&wait=S with If-None-Match: *).
 *
 * A waiting request is an operation (kv.h) parked in the hub, which lives on
 * worker 0 ("home"): no thread per watch, and no database work per watch
 * while it waits. What wakes one:
 *
 *   - a write acknowledged by this lazykvd (watch_notify, from any worker):
 *     at most WATCH_NOTE_DELAY_MS later;
 *   - a change made through another lazykvd, or an expiry: the hub scans
 *     each partition every WATCH_POLL_MS for rows it is master of that
 *     changed (version) or expired (expires_at) lately: one statement per
 *     partition per interval, whatever the number of watches, fanned out in
 *     memory;
 *   - its wait passing (then it is answered as it stands), its partition
 *     going down (503), lazykvd stopping (503).
 *
 * A woken request is run again from the start (a key's master read, a
 * prefix's token, a lock's create) and parks again if nothing it can see
 * changed: what it answers is always judged on the database's state, never
 * on what woke it, so a wake-up that was not needed costs a statement and
 * is never seen by the client.
 *
 * A list's token (X-Lazykv-Index of a list) is "T-D": T an instant (µs)
 * WATCH_SLACK_MS before the list was read, D a digest of every row under the
 * prefix, at its master, whose index (version, or an expired row's index)
 * is above T. Any later change of a key under the prefix gives it an index
 * above T (versions are clock-based), so it changes D: a watch compares
 * states, never times, and misses nothing between a list and a watch from
 * its token. The slack covers a write whose version was taken before the
 * list but committed after it.
 */
#ifndef LKV_WATCH_H
#define LKV_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "token.h"

#define WATCH_POLL_MS 100
#define WATCH_NOTE_DELAY_MS 5
#define WATCH_SLACK_MS 1000

enum watch_kind { WATCH_NONE, WATCH_KEY, WATCH_PREFIX, WATCH_LOCK };

struct kv_op;
struct worker;
struct watch_hub;

/* The hub, at home on workers[0]. NULL when out of memory. */
struct watch_hub *watch_hub_new(struct worker *workers, int nworkers);
void watch_hub_free(struct watch_hub *h);

/* A waiting request begins (dispatched) or ends (answered): while any is
 * alive, written keys are noted (any thread). */
void watch_begin(struct watch_hub *h);
void watch_end(struct watch_hub *h);

/* The number of the last batch of changes the hub looked up (any thread):
 * an operation records it when it reads the database, and parks only if
 * no change it may not have seen was looked up since. */
uint64_t watch_seq(const struct watch_hub *h);

/* How many requests wait now (any thread; /metrics). */
int watch_waiting(const struct watch_hub *h);

/* A write of key was acknowledged (any thread). Cheap when nothing waits. */
void watch_notify(struct watch_hub *h, const char *key, size_t len);

/* ---- on the home worker's thread ------------------------------------------ */

/* Parks op until something may have changed, its wait passes, or it must
 * be answered 503 (then op->done runs, perhaps at once). */
void watch_park(struct watch_hub *h, struct kv_op *op);

/* Answers every parked op with 503 and every later one at once (shutdown). */
void watch_close(struct watch_hub *h);

/* The earliest instant (monotonic µs) the hub must be run at, or 0. */
uint64_t watch_deadline(const struct watch_hub *h);

/* Runs what is due: notes, polls, waits that passed. */
void watch_on_time(struct watch_hub *h, uint64_t now_us);

/* Keys noted by watch_notify, handed over by the home worker's inbox. */
struct watch_note {
    struct watch_note *next;
    size_t len;
    char key[];
};
void watch_on_notes(struct watch_hub *h, struct watch_note *notes);

#endif
