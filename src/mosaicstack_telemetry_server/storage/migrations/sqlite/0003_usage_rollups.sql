-- Schema 3: admin keys, and the daily rollups that answer GET /v1/usage without a scan.
--
-- Admin keys belong to no instance, so api_keys.instance_id becomes nullable: SQLite cannot
-- drop a NOT NULL in place, hence the copy into a new table.
--
-- The rollups are kept by a trigger on events: it fires only for rows actually inserted (a
-- resend skipped by ON CONFLICT DO NOTHING fires nothing), inside the inserting transaction,
-- so the rollups can never disagree with the events, whoever inserts them. Days before this
-- schema are backfilled below.
--
-- Token buckets follow DDSketch's logarithmic mapping with relative accuracy 1%:
-- gamma = 1.01 / 0.99, bucket = ceil(ln(tokens) / ln(gamma)), and -1 holds zero tokens.
-- 0.020000666706669435 is ln(gamma); usage.py reads values back with the same constant.

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

-- Partial days at the edges of a range are summed from the events themselves.
CREATE INDEX events_instance_timestamp_idx ON events (instance_id, timestamp);

CREATE INDEX events_timestamp_idx ON events (timestamp);

CREATE TABLE usage_daily (
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

CREATE INDEX usage_daily_day_idx ON usage_daily (day);

CREATE TABLE usage_token_buckets (
    instance_id TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (instance_id, day, model, kind, bucket)
) WITHOUT ROWID;

CREATE INDEX usage_token_buckets_day_idx ON usage_token_buckets (day);

INSERT INTO usage_daily (instance_id, day, task_type, complexity, harness, model, provider,
    outcome, tasks, input_tokens, output_tokens, cost_usd_micros, duration_ms, successes,
    gate_passes)
SELECT instance_id, substr(timestamp, 1, 10), task_type, complexity, harness, model, provider,
    outcome, count(*), sum(actual_input_tokens), sum(actual_output_tokens),
    sum(actual_cost_usd_micros), sum(task_duration_ms), sum(outcome = 'success'),
    sum(quality_gate_passed)
FROM events
GROUP BY instance_id, substr(timestamp, 1, 10), task_type, complexity, harness, model, provider,
    outcome;

INSERT INTO usage_token_buckets (instance_id, day, model, kind, bucket, count)
SELECT instance_id, substr(timestamp, 1, 10), model, 'input',
    CASE WHEN actual_input_tokens = 0 THEN -1
    ELSE CAST(ceil(ln(actual_input_tokens) / 0.020000666706669435) AS INTEGER) END, count(*)
FROM events
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO usage_token_buckets (instance_id, day, model, kind, bucket, count)
SELECT instance_id, substr(timestamp, 1, 10), model, 'output',
    CASE WHEN actual_output_tokens = 0 THEN -1
    ELSE CAST(ceil(ln(actual_output_tokens) / 0.020000666706669435) AS INTEGER) END, count(*)
FROM events
GROUP BY 1, 2, 3, 4, 5;

CREATE TRIGGER events_usage_rollup AFTER INSERT ON events BEGIN
    INSERT INTO usage_daily (instance_id, day, task_type, complexity, harness, model, provider,
        outcome, tasks, input_tokens, output_tokens, cost_usd_micros, duration_ms, successes,
        gate_passes)
    VALUES (NEW.instance_id, substr(NEW.timestamp, 1, 10), NEW.task_type, NEW.complexity,
        NEW.harness, NEW.model, NEW.provider, NEW.outcome, 1, NEW.actual_input_tokens,
        NEW.actual_output_tokens, NEW.actual_cost_usd_micros, NEW.task_duration_ms,
        NEW.outcome = 'success', NEW.quality_gate_passed)
    ON CONFLICT (instance_id, day, task_type, complexity, harness, model, provider, outcome)
    DO UPDATE SET tasks = tasks + 1, input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_usd_micros = cost_usd_micros + excluded.cost_usd_micros,
        duration_ms = duration_ms + excluded.duration_ms,
        successes = successes + excluded.successes,
        gate_passes = gate_passes + excluded.gate_passes;
    INSERT INTO usage_token_buckets (instance_id, day, model, kind, bucket, count)
    VALUES (NEW.instance_id, substr(NEW.timestamp, 1, 10), NEW.model, 'input',
        CASE WHEN NEW.actual_input_tokens = 0 THEN -1
        ELSE CAST(ceil(ln(NEW.actual_input_tokens) / 0.020000666706669435) AS INTEGER) END, 1)
    ON CONFLICT (instance_id, day, model, kind, bucket) DO UPDATE SET count = count + 1;
    INSERT INTO usage_token_buckets (instance_id, day, model, kind, bucket, count)
    VALUES (NEW.instance_id, substr(NEW.timestamp, 1, 10), NEW.model, 'output',
        CASE WHEN NEW.actual_output_tokens = 0 THEN -1
        ELSE CAST(ceil(ln(NEW.actual_output_tokens) / 0.020000666706669435) AS INTEGER) END, 1)
    ON CONFLICT (instance_id, day, model, kind, bucket) DO UPDATE SET count = count + 1;
END;
