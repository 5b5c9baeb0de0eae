-- Schema 7: nothing to change on SQLite, which never compresses a blob. PostgreSQL's schema 7
-- stops it compressing the prediction buckets' blobs; the numbers stay the same on both.
SELECT 1;
