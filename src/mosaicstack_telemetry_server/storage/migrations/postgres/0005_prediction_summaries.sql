-- Schema 5: incremental prediction summaries (predictions/buckets.py).
-- One row per level-0 group per UTC day: counts, sketches, and exact values while few.

CREATE TABLE prediction_buckets (
    task_type text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    complexity text NOT NULL,
    day date NOT NULL,
    sample_size integer NOT NULL,
    sketch bytea NOT NULL,
    exact bytea,
    PRIMARY KEY (task_type, model, provider, complexity, day)
);

-- How far the buckets have read the events table (one row; see storage.base.EventCursor).
CREATE TABLE prediction_cursor (
    id integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL,
    last_id bigint NOT NULL,
    horizon xid8,
    in_flight xid8[] NOT NULL
);

INSERT INTO prediction_cursor (id, generation, last_id, horizon, in_flight) VALUES (1, 0, 0, NULL, '{}');

-- The transaction that stored each event: ids are drawn before commit, so they can commit out
-- of order, and the reader re-reads the transactions that were still in flight (xid8: no
-- wraparound; see storage/_postgres_summaries.py). Old rows keep NULL: they committed before this migration's lock was granted.
-- Added without a default first, then given one, so existing rows are not rewritten.
ALTER TABLE events ADD COLUMN ingest_xid xid8;

ALTER TABLE events ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();

CREATE INDEX events_ingest_xid_idx ON events (ingest_xid);
