-- Schema 1: events, API keys, data versions and precomputed prediction statistics.
-- Timestamps are UTC ISO 8601 text of fixed width (microseconds, +00:00), so they sort as text.

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    task_duration_ms INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    complexity TEXT NOT NULL,
    harness TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    estimated_input_tokens INTEGER NOT NULL,
    estimated_output_tokens INTEGER NOT NULL,
    actual_input_tokens INTEGER NOT NULL,
    actual_output_tokens INTEGER NOT NULL,
    estimated_cost_usd_micros INTEGER NOT NULL,
    actual_cost_usd_micros INTEGER NOT NULL,
    quality_gate_passed INTEGER NOT NULL,
    quality_gates_run TEXT NOT NULL,
    quality_gates_failed TEXT NOT NULL,
    context_compactions INTEGER NOT NULL,
    context_rotations INTEGER NOT NULL,
    context_utilization_final REAL NOT NULL,
    outcome TEXT NOT NULL,
    retry_count INTEGER NOT NULL,
    language TEXT,
    repo_size_category TEXT,
    received_at TEXT NOT NULL,
    CONSTRAINT events_instance_event_key UNIQUE (instance_id, event_id)
);

CREATE INDEX events_task_type_idx ON events (task_type);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE partition_versions (
    task_type TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);

CREATE TABLE prediction_stats (
    level INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    complexity TEXT NOT NULL,
    sample_size INTEGER NOT NULL,
    stats TEXT NOT NULL,
    computed_at TEXT NOT NULL,
    -- task_type first: replace_stats deletes one task type's rows through this key.
    PRIMARY KEY (task_type, level, model, provider, complexity)
);

CREATE TABLE stats_versions (
    task_type TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    computed_at TEXT NOT NULL
);
