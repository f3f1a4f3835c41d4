-- lazykv partition schema, applied by `lazykv-admin init` to every
-- partition's database (idempotent: every statement is IF NOT EXISTS or
-- INSERT IGNORE). "@T" stands for [store] table_name.

-- The data: one row per key, tombstones included (see src/store.h).
CREATE TABLE IF NOT EXISTS `@T` (
  k        VARBINARY(3072) NOT NULL,
  v        LONGBLOB        NOT NULL,
  ctype    VARBINARY(255)  NOT NULL,
  version  BIGINT UNSIGNED NOT NULL,
  deleted  TINYINT         NOT NULL DEFAULT 0,
  -- NULL: no expiry; else the instant (microseconds since the epoch, on
  -- the clock that stamps versions) from which the key is absent.
  expires_at BIGINT UNSIGNED NULL,
  -- NULL: changed here, waiting for the sync to stamp it; > 0: the sync
  -- epoch that stamped it; 0: a copy received from another partition.
  seq      BIGINT UNSIGNED NULL,
  PRIMARY KEY (k),
  -- InnoDB appends the primary key to a secondary index, so this is an
  -- index on (seq, k): the sync reads changes in (seq, k) order from it.
  KEY by_seq (seq),
  -- The sync finds tombstones to purge without scanning live rows.
  KEY by_tombstone (deleted, version),
  -- The sync finds expired rows to turn into tombstones.
  KEY by_expiry (expires_at)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;

-- Upgrades a table created by an earlier release, keeping every row (a
-- no-op on a current one). Schema 2 (TTL): expires_at and by_expiry.
ALTER TABLE `@T`
  ADD COLUMN IF NOT EXISTS expires_at BIGINT UNSIGNED NULL AFTER deleted,
  ADD KEY IF NOT EXISTS by_expiry (expires_at);

-- Schema 3 (large values, src/chunks.h): a live row is inline (chunks = 0:
-- the value is v) or chunked (v = '': the value is the chunks (k,
-- chunk_version, 0..chunks-1) of the chunks table). len: the value's
-- length (NULL: LENGTH(v)). digest: the SHA-256 of the value (NULL: rows
-- written before schema 3, and copies of them; readers use SHA2(v)).
-- Added in place (MariaDB >= 10.4: no table rebuild).
ALTER TABLE `@T`
  ADD COLUMN IF NOT EXISTS len BIGINT UNSIGNED NULL,
  ADD COLUMN IF NOT EXISTS digest BINARY(32) NULL,
  ADD COLUMN IF NOT EXISTS chunks INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS chunk_version BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- The chunks of large values: a chunk set (kh, version) is the chunks of
-- one upload of key k, n from 0, each 1 MiB but the last. kh is the
-- SHA-256 of k, computed by the server in every statement (a 3072-byte k
-- cannot be part of a key here). Rows are written once, never changed.
CREATE TABLE IF NOT EXISTS `@T_chunks` (
  kh       BINARY(32)      NOT NULL,
  version  BIGINT UNSIGNED NOT NULL,
  n        INT UNSIGNED    NOT NULL,
  k        VARBINARY(3072) NOT NULL,
  data     MEDIUMBLOB      NOT NULL,
  PRIMARY KEY (kh, version, n)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;

-- Chunk sets that may be garbage: every set when it is created, and again
-- when a main row stops naming it. since: this server's clock (µs), so
-- the grace needs no clock agreement between hosts. The collector (a step
-- of each sync pass) deletes a set nothing names once it is older than
-- [sync] chunk_grace.
CREATE TABLE IF NOT EXISTS `@T_chunks_gc` (
  kh       BINARY(32)      NOT NULL,
  version  BIGINT UNSIGNED NOT NULL,
  k        VARBINARY(3072) NOT NULL,
  since    BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (kh, version),
  KEY by_since (since)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;

-- Triggers, so that no statement that changes rows (a write, a delete, the
-- expiry, the sync's copies, a repair, a hand edit) can forget a set.
CREATE TRIGGER IF NOT EXISTS `@T_chunks_created` AFTER INSERT ON `@T_chunks`
  FOR EACH ROW IF NEW.n = 0 THEN
  INSERT INTO `@T_chunks_gc` (kh, version, k, since)
  VALUES (NEW.kh, NEW.version, NEW.k, UNIX_TIMESTAMP(NOW(6)) * 1000000)
  ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;
CREATE TRIGGER IF NOT EXISTS `@T_chunks_unnamed` BEFORE UPDATE ON `@T`
  FOR EACH ROW IF OLD.chunks > 0
    AND (NEW.chunks = 0 OR NEW.chunk_version <> OLD.chunk_version) THEN
  INSERT INTO `@T_chunks_gc` (kh, version, k, since)
  VALUES (UNHEX(SHA2(OLD.k, 256)), OLD.chunk_version, OLD.k,
          UNIX_TIMESTAMP(NOW(6)) * 1000000)
  ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;
CREATE TRIGGER IF NOT EXISTS `@T_chunks_deleted` AFTER DELETE ON `@T`
  FOR EACH ROW IF OLD.chunks > 0 THEN
  INSERT INTO `@T_chunks_gc` (kh, version, k, since)
  VALUES (UNHEX(SHA2(OLD.k, 256)), OLD.chunk_version, OLD.k,
          UNIX_TIMESTAMP(NOW(6)) * 1000000)
  ON DUPLICATE KEY UPDATE since = GREATEST(since, VALUES(since)); END IF;

-- Per-partition facts: its node id (identifies it as a sync source, new if
-- the database is ever re-created) and the last sync epoch it handed out.
CREATE TABLE IF NOT EXISTS `@T_meta` (
  name   VARBINARY(64)  NOT NULL PRIMARY KEY,
  value  BIGINT UNSIGNED NOT NULL,
  text   VARBINARY(255) NOT NULL
) ENGINE=InnoDB;

INSERT IGNORE INTO `@T_meta` (name, value, text) VALUES ('node_id', 0, UUID());
INSERT IGNORE INTO `@T_meta` (name, value, text) VALUES ('epoch', 0, '');

-- How far this partition has applied each source's changes: a (seq, k)
-- position in the source's by_seq order, written in the same transaction
-- as the rows it covers.
CREATE TABLE IF NOT EXISTS `@T_sync` (
  source   VARBINARY(64)   NOT NULL PRIMARY KEY,
  seq      BIGINT UNSIGNED NOT NULL,
  k        VARBINARY(3072) NOT NULL,
  updated  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC;
