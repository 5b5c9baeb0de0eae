-- Schema 9: the usage rollups are folded in the background from a cursor on the events table
-- (issue 17; described in storage/_rollups.py), no longer by the request that brought the
-- 2,000th pending event, so no batch pays for the others' fold.
--
-- usage_cursor says how far the fold has read the events table, as the prediction cursor does
-- (storage/_postgres_summaries.py): the events after last_id, and those of the transactions
-- that were in progress (in_flight) or not yet started (ingest_xid >= horizon) at the fold's
-- snapshot, are read from the events by the usage answers; every other event from the
-- rollups. The storage's migrate() first folds the events still listed in usage_pending (the
-- previous design's list); the cursor then starts after the last event this statement sees,
-- with its snapshot's transactions in progress, and the list goes.

CREATE TABLE usage_cursor (
    id integer PRIMARY KEY CHECK (id = 1),
    last_id bigint NOT NULL,
    horizon xid8,
    in_flight xid8[] NOT NULL
);

INSERT INTO usage_cursor (id, last_id, horizon, in_flight) SELECT 1, coalesce(max(id), 0), pg_snapshot_xmax(pg_current_snapshot()), ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot())) FROM events;

DROP TABLE usage_pending;
