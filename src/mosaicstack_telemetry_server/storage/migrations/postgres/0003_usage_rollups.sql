-- Schema 3: admin keys, and the daily rollups that answer GET /v1/usage without a scan.
--
-- Admin keys belong to no instance: api_keys.instance_id becomes nullable, and a role says
-- which kind of key a row is.
--
-- The rollups are kept by a statement-level trigger on events: its transition table holds
-- only the rows the statement actually inserted (a resend skipped by ON CONFLICT DO NOTHING is
-- not in it), and it runs inside the inserting transaction, so the rollups can never disagree
-- with the events. Its upserts go in key order, so concurrent batches lock rollup rows in one
-- order (no deadlock); a conflicting upsert waits for the other transaction, then adds to the
-- committed row (exact under concurrency). Days before this schema are backfilled below.
--
-- Token buckets follow DDSketch's logarithmic mapping with relative accuracy 1%:
-- gamma = 1.01 / 0.99, bucket = ceil(ln(tokens) / ln(gamma)), and -1 holds zero tokens.
-- 0.020000666706669435 is ln(gamma); usage.py reads values back with the same constant.

ALTER TABLE api_keys ALTER COLUMN instance_id DROP NOT NULL;

ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'instance';

ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (
    (role = 'instance' AND instance_id IS NOT NULL) OR (role = 'admin' AND instance_id IS NULL)
);

-- Partial days at the edges of a range are summed from the events themselves.
CREATE INDEX events_instance_timestamp_idx ON events (instance_id, timestamp);

CREATE INDEX events_timestamp_idx ON events (timestamp);

CREATE TABLE usage_daily (
    instance_id uuid NOT NULL,
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

CREATE INDEX usage_daily_day_idx ON usage_daily (day);

CREATE TABLE usage_token_buckets (
    instance_id uuid NOT NULL,
    day date NOT NULL,
    model text NOT NULL,
    kind text NOT NULL,
    bucket integer NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (instance_id, day, model, kind, bucket)
);

CREATE INDEX usage_token_buckets_day_idx ON usage_token_buckets (day);

CREATE FUNCTION usage_token_bucket(tokens bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tokens = 0 THEN -1 ELSE ceil(ln(tokens) / 0.020000666706669435)::integer END;

CREATE FUNCTION usage_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_daily AS u (instance_id, day, task_type, complexity, harness, model,
        provider, outcome, tasks, input_tokens, output_tokens, cost_usd_micros, duration_ms,
        successes, gate_passes)
    SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date, task_type, complexity, harness,
        model, provider, outcome, count(*), sum(actual_input_tokens), sum(actual_output_tokens),
        sum(actual_cost_usd_micros), sum(task_duration_ms),
        count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE quality_gate_passed)
    FROM new_events
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (instance_id, day, task_type, complexity, harness, model, provider, outcome)
    DO UPDATE SET tasks = u.tasks + excluded.tasks,
        input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost_usd_micros = u.cost_usd_micros + excluded.cost_usd_micros,
        duration_ms = u.duration_ms + excluded.duration_ms,
        successes = u.successes + excluded.successes,
        gate_passes = u.gate_passes + excluded.gate_passes;
    INSERT INTO usage_token_buckets AS b (instance_id, day, model, kind, bucket, count)
    SELECT instance_id, day, model, kind, bucket, count(*)
    FROM (
        SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date AS day, model, 'input' AS kind,
            usage_token_bucket(actual_input_tokens) AS bucket
        FROM new_events
        UNION ALL
        SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date, model, 'output',
            usage_token_bucket(actual_output_tokens)
        FROM new_events
    ) AS tokens
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (instance_id, day, model, kind, bucket) DO UPDATE SET count = b.count + excluded.count;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_usage_rollup AFTER INSERT ON events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION usage_rollup_insert();

INSERT INTO usage_daily (instance_id, day, task_type, complexity, harness, model, provider,
    outcome, tasks, input_tokens, output_tokens, cost_usd_micros, duration_ms, successes,
    gate_passes)
SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date, task_type, complexity, harness, model,
    provider, outcome, count(*), sum(actual_input_tokens), sum(actual_output_tokens),
    sum(actual_cost_usd_micros), sum(task_duration_ms),
    count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE quality_gate_passed)
FROM events
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

INSERT INTO usage_token_buckets (instance_id, day, model, kind, bucket, count)
SELECT instance_id, day, model, kind, bucket, count(*)
FROM (
    SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date AS day, model, 'input' AS kind,
        usage_token_bucket(actual_input_tokens) AS bucket
    FROM events
    UNION ALL
    SELECT instance_id, (timestamp AT TIME ZONE 'UTC')::date, model, 'output',
        usage_token_bucket(actual_output_tokens)
    FROM events
) AS tokens
GROUP BY 1, 2, 3, 4, 5;
