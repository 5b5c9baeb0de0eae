-- Schema 1: events, API keys, data versions and precomputed prediction statistics.

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id uuid NOT NULL,
    event_id uuid NOT NULL,
    schema_version text NOT NULL,
    timestamp timestamptz NOT NULL,
    task_duration_ms bigint NOT NULL,
    task_type text NOT NULL,
    complexity text NOT NULL,
    harness text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    estimated_input_tokens bigint NOT NULL,
    estimated_output_tokens bigint NOT NULL,
    actual_input_tokens bigint NOT NULL,
    actual_output_tokens bigint NOT NULL,
    estimated_cost_usd_micros bigint NOT NULL,
    actual_cost_usd_micros bigint NOT NULL,
    quality_gate_passed boolean NOT NULL,
    quality_gates_run text NOT NULL,
    quality_gates_failed text NOT NULL,
    context_compactions integer NOT NULL,
    context_rotations integer NOT NULL,
    context_utilization_final double precision NOT NULL,
    outcome text NOT NULL,
    retry_count integer NOT NULL,
    language text,
    repo_size_category text,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_instance_event_key UNIQUE (instance_id, event_id)
);

CREATE INDEX events_task_type_idx ON events (task_type);

CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,
    instance_id uuid NOT NULL,
    label text,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE partition_versions (
    task_type text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE TABLE prediction_stats (
    level integer NOT NULL,
    task_type text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    complexity text NOT NULL,
    sample_size integer NOT NULL,
    stats text NOT NULL,
    computed_at timestamptz NOT NULL,
    -- task_type first: replace_stats deletes one task type's rows through this key.
    PRIMARY KEY (task_type, level, model, provider, complexity)
);

CREATE TABLE stats_versions (
    task_type text PRIMARY KEY,
    version bigint NOT NULL,
    computed_at timestamptz NOT NULL
);
