-- Schema 9: the usage rollups are folded in the background from a cursor on the events table
-- (issue 17; described in storage/_rollups.py), no longer by the request that brought the
-- 2,000th pending event, so no batch pays for the others' fold.
--
-- usage_cursor says how far the fold has read the events table: every event after last_id is
-- read from the events by the usage answers, every event up to it from the rollups. The
-- storage's migrate() first folds the events still listed in usage_pending (the previous
-- design's list); the cursor then starts after the last stored event, and the list goes.
-- issued is the greatest event id ever given: SQLite would give a new row max(id) + 1, so once
-- the newest events were pruned it would hand out ids again, below the cursors or inside a
-- chunk a fold has read; insert_events numbers new events after it instead.

CREATE TABLE usage_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL,
    issued INTEGER NOT NULL
);

INSERT INTO usage_cursor (id, last_id, issued) SELECT 1, coalesce(max(id), 0), max(coalesce(max(id), 0), (SELECT last_id FROM prediction_cursor)) FROM events;

DROP TABLE usage_pending;
