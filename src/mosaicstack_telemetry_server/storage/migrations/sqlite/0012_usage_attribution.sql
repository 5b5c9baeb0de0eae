-- Schema 12: usage by schema 1.1's attribution (issue 18; described in storage/_rollups.py).
-- The rollups gain the dimensions project, branch and user_name (130 cuboids, was 42; an
-- event without the field is summed under "" in its slot, which no real value can be) and the
-- sums of cache_read_tokens, cache_write_tokens and reasoning_tokens (0 for an event without
-- them).
--
-- The rollups of the events already stored hold none of this, so they are emptied and the
-- fold's cursor goes back before the first event: every stored event is then read from the
-- events by the usage answers (exact, at the cost of reading them) until the background fold
-- has refolded them all, FOLD_LIMIT at a time. The token buckets are emptied too: they are
-- folded by the same cursor.

ALTER TABLE usage_daily ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;

DELETE FROM usage_daily;

DELETE FROM usage_token_buckets;

DELETE FROM usage_token_blocks;

UPDATE usage_cursor SET last_id = 0;
