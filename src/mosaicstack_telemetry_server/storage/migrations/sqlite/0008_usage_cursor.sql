-- Schema 8: the usage rollups are folded in the background from a cursor on the events table
-- (issue 17; described in storage/_rollups.py), no longer by the request that brought the
-- 2,000th pending event, so no batch pays for the others' fold.
--
-- usage_cursor says how far the fold has read the events table: every event after last_id is
-- read from the events by the usage answers, every event up to it from the rollups. The
-- storage's migrate() first folds the events still listed in usage_pending (the previous
-- design's list); the cursor then starts after the last stored event, and the list goes.
-- horizon and in_flight serve PostgreSQL only (transactions that may commit late); they are
-- kept here so that both backends have the same table.

CREATE TABLE usage_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL,
    horizon TEXT,
    in_flight TEXT NOT NULL
);

INSERT INTO usage_cursor (id, last_id, horizon, in_flight) SELECT 1, coalesce(max(id), 0), NULL, '[]' FROM events;

DROP TABLE usage_pending;
