-- Schema 13: events are found by their UTC day, no longer by their exact time (issue 17).
--
-- The index on the timestamp (schema 3) put every new event at a random place among the old
-- ones when a batch's events are spread over days (a history import, a backfill, a fleet's
-- clocks): a batch of 100 dirtied about 65 leaf pages of it, doubling the WAL pages of the
-- table and its unique key, and ingestion fell to 0.6x its speed before the rollups. Keyed on
-- the day, the index holds a day's events in id order, so a batch adds at the end of each of
-- its days' runs: one leaf page per day it touches. The readers that found events by time
-- (the partial days at a usage range's edges, retention's cut) ask for the day first and
-- filter the instant within it (`_usage_sql.py`, `_retention_sql.py`); the expression below
-- must stay spelled exactly as they spell it, or SQLite will not use the index.

DROP INDEX events_timestamp_idx;

CREATE INDEX events_day_idx ON events (substr(timestamp, 1, 10));
