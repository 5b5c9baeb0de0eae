-- Schema 6: the usage rollups redesigned (issue 9), so that every usage question reads rows of
-- one cuboid and ingestion sums new events in SQL (described in storage/_rollups.py).
--
-- usage_daily now holds every set of at most three categorical dimensions (a third value
-- column), which replaces usage_cube; token histograms are one row per bucket, added to by
-- `count = count + excluded.count`, which replaces the JSON arrays of usage_token_sketches.
-- usage_token_blocks sums the buckets over blocks of 16 days, for long ranges.
-- usage_pending lists the events stored but not yet folded into the rollups: insert_events
-- notes them there and folds them in groups (readers add them to the rollups' sums).
-- The old tables are dropped and the new ones backfilled from the stored events by the
-- storage's migrate() right after these statements, in the same transaction, by the very
-- fold that ingestion uses. The events are the source: retention deletes the events and the
-- rollups of the same days, so they hold the same days (a database upgraded from before schema
-- 3 never had rollups to convert).

DROP TABLE usage_daily;

DROP TABLE usage_cube;

DROP TABLE usage_token_sketches;

CREATE TABLE usage_daily (
    dims TEXT NOT NULL,
    day TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    v1 TEXT NOT NULL,
    v2 TEXT NOT NULL,
    v3 TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd_micros INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    gate_passes INTEGER NOT NULL,
    -- dims and day first: one range serves an instance's question and an admin's alike, and
    -- retention deletes a cuboid's old days by it.
    PRIMARY KEY (dims, day, instance_id, v1, v2, v3)
) WITHOUT ROWID;

CREATE TABLE usage_token_buckets (
    instance_id TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    -- The owner first: a range of days of one owner is read as one stretch of the key.
    PRIMARY KEY (instance_id, day, model, kind, bucket)
) WITHOUT ROWID;

-- For retention, which deletes old days of every owner.
CREATE INDEX usage_token_buckets_day_idx ON usage_token_buckets (day);

-- The same counts per block of 16 days (BLOCK_DAYS; block_start is a multiple of 16 days
-- after 1970-01-01), so that a long range reads a few blocks rather than every day.
CREATE TABLE usage_token_blocks (
    instance_id TEXT NOT NULL,
    block_start TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (instance_id, block_start, model, kind, bucket)
) WITHOUT ROWID;

-- For retention, which deletes old blocks of every owner.
CREATE INDEX usage_token_blocks_start_idx ON usage_token_blocks (block_start);

CREATE TABLE usage_pending (
    id INTEGER PRIMARY KEY
);
