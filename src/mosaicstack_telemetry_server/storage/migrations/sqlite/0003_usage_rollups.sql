-- Schema 3: admin keys, and the daily rollups that answer GET /v1/usage without a scan.
--
-- Admin keys belong to no instance, so api_keys.instance_id becomes nullable: SQLite cannot
-- drop a NOT NULL in place, hence the copy into a new table.
--
-- The rollups (described in storage/_rollups.py) are added to by insert_events for the events
-- it newly stored, in the same transaction; events stored before this schema are backfilled by
-- the storage's migrate() right after these statements, in the same transaction too.

CREATE TABLE api_keys_v3 (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    instance_id TEXT,
    role TEXT NOT NULL DEFAULT 'instance',
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CONSTRAINT api_keys_role_check CHECK (
        (role = 'instance' AND instance_id IS NOT NULL) OR (role = 'admin' AND instance_id IS NULL)
    )
);

INSERT INTO api_keys_v3 (key_id, key_hash, instance_id, role, label, created_at, revoked_at)
SELECT key_id, key_hash, instance_id, 'instance', label, created_at, revoked_at FROM api_keys;

DROP TABLE api_keys;

ALTER TABLE api_keys_v3 RENAME TO api_keys;

CREATE INDEX api_keys_instance_id_idx ON api_keys (instance_id, created_at);

-- Partial days at the edges of a range are summed from the events themselves (at most two
-- days' worth, so one index on the time serves instance keys too).
CREATE INDEX events_timestamp_idx ON events (timestamp);

CREATE TABLE usage_daily (
    dims TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    day TEXT NOT NULL,
    v1 TEXT NOT NULL,
    v2 TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd_micros INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    gate_passes INTEGER NOT NULL,
    -- dims and day first: one range serves an instance's question and an admin's alike.
    PRIMARY KEY (dims, day, instance_id, v1, v2)
) WITHOUT ROWID;

CREATE TABLE usage_cube (
    instance_id TEXT NOT NULL,
    day TEXT NOT NULL,
    task_type TEXT NOT NULL,
    complexity TEXT NOT NULL,
    harness TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd_micros INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    gate_passes INTEGER NOT NULL,
    PRIMARY KEY (instance_id, day, task_type, complexity, harness, model, provider, outcome)
) WITHOUT ROWID;

CREATE INDEX usage_cube_day_idx ON usage_cube (day);

-- A rowid table: its rows (two JSON histograms) are too wide for WITHOUT ROWID.
CREATE TABLE usage_token_sketches (
    instance_id TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    input_counts TEXT NOT NULL,
    output_counts TEXT NOT NULL,
    CONSTRAINT usage_token_sketches_key UNIQUE (instance_id, day, model)
);
