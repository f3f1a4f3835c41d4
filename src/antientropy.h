/*
 * antientropy.h -- `lazykv-admin verify [--repair]`: compares all partitions
 * by hash-bucket digests, narrowed where they differ, and lists (and with
 * repair, fixes) the keys whose live state differs. See antientropy.c.
 */
#ifndef LKV_ANTIENTROPY_H
#define LKV_ANTIENTROPY_H

#include "config.h"

/* The exit status of verify --repair while a sync pass runs (EX_TEMPFAIL,
 * as lazykv-sync's own when another pass holds the lock). */
#define ADMIN_LOCKED 75

/* Verifies cfg's partitions, printing a "differs: KEY ..." line per key and
 * a summary line on stdout. Returns 0 when none differ (or, with repair, all
 * were repaired), 1 otherwise or when a partition cannot be read, and
 * ADMIN_LOCKED when repair finds a sync pass running (nothing done: repair
 * and passes exclude each other through the pass lock). */
int admin_verify(const struct lkv_config *cfg, int repair, int verbose);

#endif
