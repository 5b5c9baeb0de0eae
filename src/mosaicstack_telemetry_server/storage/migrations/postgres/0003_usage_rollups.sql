-- Schema 3: admin keys, and the daily rollups that answer GET /v1/usage without a scan.
--
-- Admin keys belong to no instance: api_keys.instance_id becomes nullable, and a role says
-- which kind of key a row is.
--
-- The rollups (described in storage/_rollups.py) are added to by insert_events for the events
-- it newly stored, in the same transaction, in key order (concurrent batches lock rows in one
-- order: no deadlock; a conflicting upsert waits for the other transaction, then adds to the
-- committed row: exact). Events stored before this schema are backfilled by the storage's
-- migrate() right after these statements, in the same transaction. instance_id is text here:
-- '*' stands for every instance.

ALTER TABLE api_keys ALTER COLUMN instance_id DROP NOT NULL;

ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'instance';

ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (
    (role = 'instance' AND instance_id IS NOT NULL) OR (role = 'admin' AND instance_id IS NULL)
);

-- Partial days at the edges of a range are summed from the events themselves (at most two
-- days' worth, so one index on the time serves instance keys too).
CREATE INDEX events_timestamp_idx ON events (timestamp);

CREATE TABLE usage_daily (
    dims text NOT NULL,
    instance_id text NOT NULL,
    day date NOT NULL,
    v1 text NOT NULL,
    v2 text NOT NULL,
    tasks bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_usd_micros bigint NOT NULL,
    duration_ms bigint NOT NULL,
    successes bigint NOT NULL,
    gate_passes bigint NOT NULL,
    -- dims and day first: one range serves an instance's question and an admin's alike.
    PRIMARY KEY (dims, day, instance_id, v1, v2)
);

CREATE TABLE usage_cube (
    instance_id text NOT NULL,
    day date NOT NULL,
    task_type text NOT NULL,
    complexity text NOT NULL,
    harness text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    outcome text NOT NULL,
    tasks bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_usd_micros bigint NOT NULL,
    duration_ms bigint NOT NULL,
    successes bigint NOT NULL,
    gate_passes bigint NOT NULL,
    PRIMARY KEY (instance_id, day, task_type, complexity, harness, model, provider, outcome)
);

CREATE INDEX usage_cube_day_idx ON usage_cube (day);

CREATE TABLE usage_token_sketches (
    instance_id text NOT NULL,
    day date NOT NULL,
    model text NOT NULL,
    tasks bigint NOT NULL,
    input_counts jsonb NOT NULL,
    output_counts jsonb NOT NULL,
    PRIMARY KEY (instance_id, day, model)
);
