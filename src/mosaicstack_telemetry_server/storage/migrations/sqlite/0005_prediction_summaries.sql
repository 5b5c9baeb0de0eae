-- Schema 5: incremental prediction summaries (predictions/buckets.py).
-- One row per level-0 group per UTC day: counts, sketches, and exact values while few.

CREATE TABLE prediction_buckets (
    task_type TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    complexity TEXT NOT NULL,
    day TEXT NOT NULL,
    sample_size INTEGER NOT NULL,
    sketch BLOB NOT NULL,
    exact BLOB,
    PRIMARY KEY (task_type, model, provider, complexity, day)
);

-- How far the buckets have read the events table (one row; see storage.base.EventCursor).
CREATE TABLE prediction_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    horizon TEXT,
    in_flight TEXT NOT NULL
);

INSERT INTO prediction_cursor (id, generation, last_id, horizon, in_flight) VALUES (1, 0, 0, NULL, '[]');
