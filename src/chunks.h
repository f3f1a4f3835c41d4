/*
 * chunks.h -- large values as chunk rows (issue 14): the design, and the
 * pure arithmetic every part of it shares (how many chunks, which chunks a
 * byte range needs, what packet size a partition must allow). This header
 * is where the design is written down, as sync.h is for replication. The
 * code that follows it: sql/schema.sql (the tables and triggers), upload.c
 * and download.c (streaming through lazykvd), lane.c (chunk statements and
 * the switch), kv.c (the canonical tee, content-addressed values from
 * their spool.c file), store.c and sync.c (copies, the
 * conditional apply, the collector), antientropy.c (verify).
 *
 * As built, two steps are simpler than the text below says: the count and
 * the switch are one statement, INSERT ... SELECT ... WHERE (SELECT COUNT(*)
 * of the set) = chunks (STORE_SWITCH_IF_WHOLE: the count's shared locks
 * hold the set until the commit), used by the master's switch, canonical
 * copies, the sync's applies and repairs alike; and a writer whose upload
 * failed leaves its set to the collector rather than deleting it itself.
 *
 * ---- Why chunks ---------------------------------------------------------------
 * A value cannot stream while it is one column of one row: Connector/C
 * reads a whole result row into client memory before mysql_stmt_fetch_column
 * hands any of it out, every statement and every row must fit in the
 * server's max_allowed_packet, and SUBSTRING(v, ...) makes the server read
 * the whole blob again for each piece. So a value longer than
 * CHUNKS_INLINE_MAX is stored as rows of `@T_chunks` of CHUNKS_SIZE bytes
 * each (the last one 1..CHUNKS_SIZE), and its main row in `@T` holds the
 * metadata: length, SHA-256, chunk count, and which chunk set is the value.
 * As GridFS splits files and chunks.
 *
 * ---- Threshold: 1 MiB, the chunk size -----------------------------------------
 *  - Memory: the largest row bounds what one read costs lazykvd (the whole
 *    row is in client memory). With no row above 1 MiB + key, a download
 *    holds at most two chunks, and a batched read of `batch` keys (<= 16)
 *    at most 16 MiB, instead of 16 x max_value_size today.
 *  - Packets: a statement carries at most CHUNKS_STATEMENT_BYTES of value
 *    bytes (one chunk; a multi-row write or copy stops adding rows there,
 *    and an inline value up to the threshold goes alone), so a partition
 *    needs max_allowed_packet >= chunks_packet_min(key_length), a little
 *    over 1 MiB, whatever max_value_size (up to CHUNKS_VALUE_MAX, 1 GiB).
 *    lazykvd is to check every partition at start-up and refuse with one
 *    line naming the partition, its value and the minimum. (Today's multi-row
 *    caps, STORE_MANY_BYTES = 4 MiB for copies and none for group-committed
 *    writes, come down to this one.)
 *  - Threshold = chunk size: a value that fits in one chunk gains nothing
 *    from the second table (a main row and a chunk row: two rows and two
 *    statements for the same memory). And the 1 MiB buffer that collects an
 *    upload's first chunk is what decides: a body that ends within it is an
 *    ordinary inline write (batched and group-committed as today); one that
 *    goes on becomes chunk 0. Exactly 1 MiB is inline; 1 MiB + 1 byte is
 *    two chunks (1 MiB and 1 byte).
 *  - Chunk size: a chunk costs a statement, a commit and a row header with
 *    the key (<= 3 KiB); over 1 MiB that is under 1 %, while 64 KiB chunks
 *    would cost 16 times the statements of a 64 MiB POST. Larger chunks buy
 *    nothing on the server (InnoDB keeps any long blob off-page) and cost
 *    lazykvd memory: 8 uploads and 8 downloads with two chunks each make
 *    32 chunks, 32 MiB against the 64 MiB target, which 2 MiB chunks would
 *    use up before libmicrohttpd's buffers and a canonical write's copies.
 *
 * ---- Tables (schema 3; "@T" stands for [store] table_name) -------------------
 * The chunks cannot be keyed (k, version, n) literally: InnoDB limits an
 * index key to 3072 bytes and k alone may take them all (MariaDB 10.11:
 * "ERROR 1071 Specified key was too long"). They are keyed by kh, the
 * SHA-256 of k computed by the server (UNHEX(SHA2(k, 256))) in every
 * statement, so lazykvd, the sync and verify's joins never disagree on it;
 * k itself is kept in the row (not indexed) to find the main row again.
 *
 *   -- Schema 3: large values. A live row is inline (chunks = 0: the value
 *   -- is v) or chunked (v = '', the value is the chunks (kh, chunk_version,
 *   -- 0..chunks-1) of @T_chunks). len: the value's length (NULL on rows
 *   -- written before schema 3: LENGTH(v)). digest: SHA-256 of the value
 *   -- (NULL before schema 3). Instant in MariaDB >= 10.4: no table rebuild.
 *   ALTER TABLE `@T`
 *     ADD COLUMN IF NOT EXISTS len BIGINT UNSIGNED NULL,
 *     ADD COLUMN IF NOT EXISTS digest BINARY(32) NULL,
 *     ADD COLUMN IF NOT EXISTS chunks INT UNSIGNED NOT NULL DEFAULT 0,
 *     ADD COLUMN IF NOT EXISTS chunk_version BIGINT UNSIGNED NOT NULL DEFAULT 0,
 *     ALGORITHM=INSTANT;
 *
 *   -- The chunks of large values. A chunk set is (kh, version): the chunks
 *   -- of one upload of key k, n from 0, each CHUNKS_SIZE bytes but the
 *   -- last. version is the upload's version (see Writes), which the main
 *   -- row names as chunk_version. Rows are written once and never changed.
 *   CREATE TABLE IF NOT EXISTS `@T_chunks` (
 *     kh       BINARY(32)      NOT NULL,
 *     version  BIGINT UNSIGNED NOT NULL,
 *     n        INT UNSIGNED    NOT NULL,
 *     k        VARBINARY(3072) NOT NULL,
 *     data     MEDIUMBLOB      NOT NULL,
 *     PRIMARY KEY (kh, version, n)
 *   ) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;
 *
 *   -- Chunk sets that may be garbage: every set when it is created, and
 *   -- again when a main row stops naming it. since: the partition's own
 *   -- clock (µs), so the grace needs no clock agreement between hosts.
 *   CREATE TABLE IF NOT EXISTS `@T_chunks_gc` (
 *     kh       BINARY(32)      NOT NULL,
 *     version  BIGINT UNSIGNED NOT NULL,
 *     k        VARBINARY(3072) NOT NULL,
 *     since    BIGINT UNSIGNED NOT NULL,
 *     PRIMARY KEY (kh, version),
 *     KEY by_since (since)
 *   ) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;
 *
 *   -- Triggers, so that no path that writes rows (a master write, a
 *   -- delete, delete-tree, the expiry, the sync's multi-row copies, a
 *   -- canonical copy, verify --repair, a hand edit) can forget a set.
 *   -- tools/embed_sql.sh ends a statement at a ';' that ends a line, so
 *   -- the ';' inside a body never ends one.
 *   CREATE TRIGGER IF NOT EXISTS `@T_chunks_created` AFTER INSERT ON `@T_chunks`
 *     FOR EACH ROW IF NEW.n = 0 THEN
 *     INSERT INTO `@T_chunks_gc` (kh, version, k, since)
 *     VALUES (NEW.kh, NEW.version, NEW.k, UNIX_TIMESTAMP(NOW(6)) * 1000000)
 *     ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;
 *   CREATE TRIGGER IF NOT EXISTS `@T_chunks_unnamed` BEFORE UPDATE ON `@T`
 *     FOR EACH ROW IF OLD.chunks > 0
 *       AND (NEW.chunks = 0 OR NEW.chunk_version <> OLD.chunk_version) THEN
 *     INSERT INTO `@T_chunks_gc` (kh, version, k, since)
 *     VALUES (UNHEX(SHA2(OLD.k, 256)), OLD.chunk_version, OLD.k,
 *             UNIX_TIMESTAMP(NOW(6)) * 1000000)
 *     ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;
 *   CREATE TRIGGER IF NOT EXISTS `@T_chunks_deleted` AFTER DELETE ON `@T`
 *     FOR EACH ROW IF OLD.chunks > 0 THEN
 *     INSERT INTO `@T_chunks_gc` (kh, version, k, since)
 *     VALUES (UNHEX(SHA2(OLD.k, 256)), OLD.chunk_version, OLD.k,
 *             UNIX_TIMESTAMP(NOW(6)) * 1000000)
 *     ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;
 *
 * (Checked on a throwaway MariaDB 10.11: the DDL applies twice without
 * error, over a schema-2 table with rows, and through tools/embed_sql.sh; a
 * switch, a lower-version copy that changes nothing (no candidate), a
 * tombstone (one candidate), an upsert with RETURNING (lane.c's form), the
 * collector's delete, verify's completeness join, which reads @T_chunks by
 * primary key: ref on (func, chunk_version).) What the update trigger costs
 * a write that leaves its set alone: a bulk UPDATE of 50,000 rows took 6 µs
 * a row without it and 9 µs with it (median of 6; the INSERT ... SELECT
 * ... WHERE form, without IF, took 16), small next to a statement's round
 * trip. `init` then needs the TRIGGER privilege besides CREATE. lazykvd,
 * lazykv-sync and lazykv-admin refuse a table without chunk_version or
 * without @T_chunks with one line (exit 2), as they refuse schema 1, until
 * `lazykv-admin init` upgrades it.
 *
 * ---- How it stays correct -------------------------------------------------------
 *  - A chunk set is named by (k, C), C the upload's version: the HLC reading
 *    (version_now_us) when the upload began. The key's master refuses a C
 *    its @T_chunks already holds (primary key; chunk 0 is written first, and
 *    a duplicate there means: take C + 1 and start again), and every set of
 *    a key anywhere was minted by a master of that key, so (k, C) names one
 *    content in the whole cluster. (Two masters of one key exist only while
 *    a re-placement's pending writes drain; they would have to start
 *    uploads of that key in the same microsecond.)
 *  - Chunk rows are immutable: inserted once, deleted only through the
 *    collector's transaction.
 *    A read of (kh, C, n) returns that value's bytes or nothing, never
 *    another version's, which is what makes a read that never mixes
 *    versions possible without a snapshot.
 *  - A main row names a set only when the set is complete: every switch
 *    (a master write, a canonical copy, a sync copy, a repair) locks the
 *    main row (FOR UPDATE), then counts the set's rows with a shared lock,
 *    and applies nothing when the count is short. The collector locks the
 *    main row first too: one lock order, so the two never deadlock, and a
 *    set is never deleted under a switch that names it.
 *  - The main row is the only switch: the old value stays whole and visible
 *    until the one short transaction that names the new set commits, and a
 *    failed upload or copy leaves only a set that nothing names.
 *  - A copy (sync or canonical) is applied only over a lower version (the
 *    STORE_APPLY_UPDATE rule, extended to len, digest, chunks and
 *    chunk_version), after its set is complete at the target: a target
 *    never shows a partial value.
 *  - A set nothing names is deleted only when its candidate row is older
 *    than chunk_grace (since: when it was created or stopped being named)
 *    and, in the deleting transaction, the main row read FOR UPDATE still
 *    does not name it.
 *
 * ---- Writes (the key's master, lazy and canonical) ------------------------------
 * The body streams into a CHUNKS_SIZE buffer while the hasher (digest.h)
 * takes every byte: SHA-256 always, SHA-512 / MD5 when the client sent
 * them. The running total is checked against max_value_size (413 at once).
 *  1. The body ends within the buffer: an inline write as today, with len
 *     and digest set, chunks = 0.
 *  2. It goes on: C = version_now_us(); the full buffer is chunk 0, then
 *     each next full buffer (and the short last one) is one autocommit
 *        INSERT INTO `@T_chunks` (kh, version, n, k, data)
 *        VALUES (UNHEX(SHA2(?, 256)), ?, ?, ?, ?)
 *     One chunk in flight, one filling: the connection is suspended while
 *     both are taken, so a fast client waits for the database instead of
 *     growing lazykvd. Autocommit per chunk, not one transaction: a long
 *     transaction over a slow client would hold undo and locks for
 *     minutes, and a set nothing names is invisible anyway.
 *  3. The last byte: a digest the client sent that does not match stops
 *     here (400, the problem document names digest_expected_name()); so do
 *     413, a client gone, a partition down. Nothing was switched: the old
 *     value is whole, the chunks are a set nothing names. The writer
 *     deletes it at once through the collector's transaction (which reads
 *     the main row first, so a switch whose COMMIT reply was lost on the
 *     wire is never undone), or the collector does later.
 *  4. The switch, one short transaction on the master:
 *        SELECT version, deleted, expires_at FROM `@T` WHERE k = ? FOR UPDATE
 *        -- If-Match / If-None-Match judged on it, as lane.c does
 *        SELECT COUNT(*) FROM `@T_chunks`
 *          WHERE kh = UNHEX(SHA2(?, 256)) AND version = ? LOCK IN SHARE MODE
 *        -- must be the number of chunks written
 *        INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq,
 *                          len, digest, chunks, chunk_version)
 *        VALUES (?, '', ?, ?, 0, ?, NULL, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE
 *          ... version = GREATEST(version + 1, VALUES(version))
 *     The version is the ordinary HLC of every write, taken under the row
 *     lock at the switch, so preconditions and the order of writes to a
 *     key mean what they mean today. It is usually above C (C is when the
 *     upload began): the main row names the set by chunk_version, not by
 *     its version. The old value's set is now a candidate (trigger).
 *     These statements fit the lane's group commit (LANE_WRITE already
 *     locks and judges rows; the count is one more statement).
 *  Canonical writes tee each chunk to every other reachable partition as
 *  it is written to the master (one chunk in flight per replica; a replica
 *  that falls behind is dropped from this write and left to the sync;
 *  written as the sync writes them, ON DUPLICATE KEY UPDATE n = n), and
 *  switch each replica, as a copy with the count check, only after the
 *  master's switch commits: a replica never shows a value the master
 *  refused. X-Lazykv-Replicas counts the replicas switched.
 *  Content-addressed writes (POST ?key=sha256) learn their key, and so
 *  their master, only at the last byte, unless their Content-Digest or
 *  Repr-Digest declares the body's SHA-256: then the body streams to that
 *  key's master as any upload, checked at its end as any write's digest.
 *  Else, up to CHUNKS_INLINE_MAX they are
 *  buffered and written inline. Longer, the body is spooled to an unnamed
 *  local file as it arrives (spool.h). At the end the key's master is
 *  asked for the key's row: live with the same digest, the answer is 200
 *  and nothing is written; else the chunks are written from the file, one
 *  at a time (teed when canonical), and switched to as any upload's.
 *  (Designed first: chunks to the master of a random staging key, copied
 *  to the real master at the end. Not built: it moves every byte through
 *  the databases twice, where the spool moves it once through the page
 *  cache, and it would leave staging sets to collect after a crash, where
 *  an unnamed file leaves nothing.)
 *
 * ---- Reads (GET, HEAD, ranges; lazy or canonical) -------------------------------
 * The main row first, as today (a chunked row is small: v = ''): version,
 * len, digest, chunks, chunk_version. HEAD stops there; Content-Length is
 * len, Repr-Digest is digest (for a row from before schema 3, inline, the
 * digest is computed from v before the headers go out). A chunked GET then
 * reads chunk n of (k, chunk_version) one statement at a time
 *     SELECT data FROM `@T_chunks`
 *       WHERE kh = UNHEX(SHA2(?, 256)) AND version = ? AND n = ?
 * (SUBSTRING(data, ?, ?) for the first and last chunk of a range), from
 * libmicrohttpd's content reader: at most one chunk being sent and one read
 * ahead, and the next is asked for only when the client took the previous,
 * so a client that stops reading stops the reads. A range needs chunks
 * chunks_span() gives; an inline value is sliced in memory.
 * A read never mixes versions: it reads the set the main row named when it
 * was read, and chunk rows never change. A chunk that is gone means the
 * value was replaced at least chunk_grace ago and the set collected: the
 * response is cut short (the connection closes before Content-Length
 * bytes), never completed with other bytes; the client resumes with Range
 * and If-Range. Neither a consistent snapshot (it would pin a connection
 * and InnoDB's purge for the whole download of a slow client) nor
 * re-reading the main row afterwards (it could only say the value was
 * replaced, which is no error for a read that began before) is needed.
 * The read cache holds inline values only.
 *
 * ---- The sync --------------------------------------------------------------------
 * Batches carry main rows as today (a chunked one without its value). For
 * each chunked row, before the batch's apply transaction:
 *  1. the target's main row already has this version or a newer one: skip
 *     (the apply is a no-op for it);
 *  2. copy the chunks the target lacks, one at a time (one chunk in the
 *     sync's memory per value), with INSERT ... ON DUPLICATE KEY UPDATE
 *     n = n: a chunk already there is the same bytes ((k, C) names one
 *     content), left by an earlier pass killed half-way, or by a canonical
 *     copy; so a killed pass resumes where it stopped;
 *  3. a chunk missing at the source: re-read the source's main row. It no
 *     longer names the set: the row changed, its new version is pending
 *     there (seq NULL) and a later pass copies it, so this row is dropped
 *     from the batch. It still names it: the source is damaged; the pair
 *     stops (exit 1) and verify reports the key.
 * The apply transaction then locks the batch's chunked rows at the target
 * (FOR UPDATE) and counts each set it copied (LOCK IN SHARE MODE) before
 * the multi-row upsert; a short count rolls the batch back. Rows and watermark still commit together: a row is recorded
 * as applied only with its whole set in place. The collector runs as the
 * last step of a pass, and passes are exclusive (the named lock), so it
 * never races a pass's copies.
 *
 * ---- Tombstones, expiry, purge ---------------------------------------------------
 * A delete, a delete-tree and the expiry (store_expire) write tombstones
 * with chunks = 0, chunk_version = 0, len = 0, digest NULL, v = '': the old
 * set becomes a candidate (trigger) and the tombstone propagates and is
 * purged exactly as today. Tombstones never have chunks; the purge deletes
 * tombstone rows only, so it never touches chunks (the delete trigger
 * covers any other deletion). A refresh of a TTL keeps chunk_version:
 * nothing becomes a candidate.
 *
 * ---- Orphans: the collector (a step of each sync pass, per partition) ------------
 *     SELECT kh, version, k FROM `@T_chunks_gc` FORCE INDEX (by_since)
 *       WHERE since < UNIX_TIMESTAMP(NOW(6)) * 1000000 - ? LIMIT ?
 * and for each, one transaction:
 *     SELECT chunks, chunk_version FROM `@T` WHERE k = ? FOR UPDATE
 *     -- names it: DELETE the candidate only
 *     -- else: DELETE FROM `@T_chunks` WHERE kh = ? AND version = ?
 *     --       and the candidate
 * The main row's lock orders the collector against switches (which take
 * the same lock first, and hold the set with a shared lock). chunk_grace
 * ([sync], default CHUNKS_GRACE_DEFAULT) must exceed the longest upload
 * (an upload's set is a candidate from its creation; if it is taken, the
 * switch's count fails and the upload fails cleanly with 503) and the
 * longest download of a replaced value. An idle pass reads one empty index
 * range: the candidates table holds only sets created or unnamed recently.
 * Orphans come from uploads cut half-way (kill -9 of lazykvd included),
 * replicas dropped from a canonical write, sync passes killed half-way
 * whose target row then moved on, and digest mismatches.
 *
 * ---- Verify and repair -----------------------------------------------------------
 * The row digest compares the digest column instead of reading values:
 * COALESCE(digest, UNHEX(SHA2(v, 256))) in place of MD5(v) (a row from
 * before schema 3 gives the same digest whether or not one partition has
 * filled in the column), so verify never reads a chunk. Verify also lists,
 * per partition, main rows whose named set is incomplete:
 *     SELECT m.k, m.chunks, COUNT(c.n) FROM `@T` m LEFT JOIN `@T_chunks` c
 *       ON c.kh = UNHEX(SHA2(m.k, 256)) AND c.version = m.chunk_version
 *     WHERE m.chunks > 0 GROUP BY m.k HAVING COUNT(c.n) <> m.chunks
 * --repair copies the winner's set as the sync does (chunk by chunk), under
 * the sync's named lock, so the collector cannot run meanwhile.
 *
 * ---- Rows from before schema 3 ---------------------------------------------------
 * They stay inline whatever their size (they were written under the old
 * max_allowed_packet, which reading them still needs), with len and digest
 * NULL, until they are written again. Nothing needs to rewrite them.
 */
#ifndef LKV_CHUNKS_H
#define LKV_CHUNKS_H

#include <stdint.h>

#include "range.h"

#define CHUNKS_SIZE (1u << 20)               /* bytes of every chunk but the last */
#define CHUNKS_INLINE_MAX CHUNKS_SIZE        /* longest value kept in the main row */
#define CHUNKS_STATEMENT_BYTES CHUNKS_SIZE   /* value bytes one statement carries */
#define CHUNKS_VALUE_MAX (1ull << 30)        /* max_value_size's ceiling: 1024 chunks */
#define CHUNKS_GRACE_DEFAULT 3600            /* seconds ([sync] chunk_grace) */

/* Whether a value of len bytes is stored in its main row. */
static inline int chunks_inline(uint64_t len)
{
    return len <= CHUNKS_INLINE_MAX;
}

/* Chunk rows of a value of len bytes: 0 when it is inline, else
 * ceil(len / CHUNKS_SIZE). */
uint32_t chunks_count(uint64_t len);

/* Bytes of chunk n of a chunked value of len bytes: CHUNKS_SIZE but for
 * the last chunk (1..CHUNKS_SIZE); 0 when there is no chunk n. */
uint32_t chunks_len(uint64_t len, uint32_t n);

/* The chunks a byte range needs: first..last, skip bytes dropped from the
 * start of the first, keep bytes kept of the last (the first and last can
 * be one chunk). */
struct chunks_span {
    uint32_t first;
    uint32_t last;
    uint32_t skip;   /* r->first % CHUNKS_SIZE */
    uint32_t keep;   /* r->last % CHUNKS_SIZE + 1 */
};

/* The span of r (a satisfiable range of a chunked value, range.h). */
void chunks_span(const struct byte_range *r, struct chunks_span *out);

/* The smallest max_allowed_packet a partition must allow (bytes), for keys
 * of up to key_length bytes: the largest statement lazykv sends, which
 * carries CHUNKS_STATEMENT_BYTES of values with up to 16 rows of key,
 * content type and numbers, plus the statement's text. */
uint64_t chunks_packet_min(int key_length);

#endif
