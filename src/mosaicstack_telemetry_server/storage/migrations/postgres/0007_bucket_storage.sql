-- Schema 7: the buckets' blobs are stored out of line without compression.
-- They are already in the narrowest width per array (predictions/layout.py) and do not compress
-- by the 25% PostgreSQL asks, yet its default storage tried to compress every one on every
-- write: 240 of the 270 ms of writing the 216 buckets a refresh touches at 10M events. Only the
-- column's storage changes (no rewrite); rows are written the new way from their next update.
ALTER TABLE prediction_buckets ALTER COLUMN sketch SET STORAGE EXTERNAL, ALTER COLUMN exact SET STORAGE EXTERNAL;
