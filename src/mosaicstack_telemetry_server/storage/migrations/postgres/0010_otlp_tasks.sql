-- Schema 10: the OTLP receiver's open tasks (otlp/). Calls (records of API calls received over
-- OTLP) are summed into the open task of their key until the task closes and becomes one event.
-- otlp_calls remembers each call's identity for a day, so a record an exporter sends again is
-- counted once; otlp_sessions holds the current prompt of each session whose calls carry no
-- prompt id. Times are Unix seconds (REAL) of the server's clock, except *_ns: the records'.

CREATE TABLE otlp_tasks (
    instance_id uuid NOT NULL,
    task_key text NOT NULL,
    session_key text NOT NULL,
    first_call text NOT NULL,
    harness text NOT NULL,
    model text NOT NULL,
    top_cost bigint NOT NULL,
    task_type text NOT NULL,
    complexity text NOT NULL,
    project text,
    branch text,
    user_name text,
    calls bigint NOT NULL,
    failed_calls bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    cost_usd_micros bigint NOT NULL,
    start_ns bigint NOT NULL,
    end_ns bigint NOT NULL,
    touched_at double precision NOT NULL,
    closing_at double precision,
    PRIMARY KEY (instance_id, task_key)
);
CREATE INDEX otlp_tasks_touched_idx ON otlp_tasks (touched_at);
CREATE INDEX otlp_tasks_session_idx ON otlp_tasks (instance_id, session_key);

CREATE TABLE otlp_calls (
    instance_id uuid NOT NULL,
    call_id text NOT NULL,
    seen_at double precision NOT NULL,
    PRIMARY KEY (instance_id, call_id)
);
CREATE INDEX otlp_calls_seen_idx ON otlp_calls (seen_at);

CREATE TABLE otlp_sessions (
    instance_id uuid NOT NULL,
    session_key text NOT NULL,
    prompt text NOT NULL,
    prompt_ns bigint NOT NULL,
    seen_at double precision NOT NULL,
    PRIMARY KEY (instance_id, session_key)
);
CREATE INDEX otlp_sessions_seen_idx ON otlp_sessions (seen_at);
