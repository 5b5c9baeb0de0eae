-- Schema 10: the OTLP receiver's open tasks (otlp/). Calls (records of API calls received over
-- OTLP) are summed into the open task of their key until the task closes and becomes one event.
-- otlp_calls remembers each call's identity for a day, so a record an exporter sends again is
-- counted once; otlp_sessions holds the current prompt of each session whose calls carry no
-- prompt id. Times are Unix seconds (REAL) of the server's clock, except *_ns: the records'.

CREATE TABLE otlp_tasks (
    instance_id TEXT NOT NULL,
    task_key TEXT NOT NULL,
    session_key TEXT NOT NULL,
    first_call TEXT NOT NULL,
    harness TEXT NOT NULL,
    model TEXT NOT NULL,
    top_cost INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    complexity TEXT NOT NULL,
    project TEXT,
    branch TEXT,
    user_name TEXT,
    calls INTEGER NOT NULL,
    failed_calls INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd_micros INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    touched_at REAL NOT NULL,
    closing_at REAL,
    PRIMARY KEY (instance_id, task_key)
);
CREATE INDEX otlp_tasks_touched_idx ON otlp_tasks (touched_at);
CREATE INDEX otlp_tasks_session_idx ON otlp_tasks (instance_id, session_key);

CREATE TABLE otlp_calls (
    instance_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (instance_id, call_id)
);
CREATE INDEX otlp_calls_seen_idx ON otlp_calls (seen_at);

CREATE TABLE otlp_sessions (
    instance_id TEXT NOT NULL,
    session_key TEXT NOT NULL,
    prompt TEXT NOT NULL,
    prompt_ns INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (instance_id, session_key)
);
CREATE INDEX otlp_sessions_seen_idx ON otlp_sessions (seen_at);
