-- Schema 8: the optional fields of event schema 1.1, NULL on every 1.0 event (stored before or
-- after). `user` is a reserved word in SQL, so its column is user_name. Nullable columns without
-- a default: adding them rewrites nothing, however many events are stored.
ALTER TABLE events
    ADD COLUMN project text,
    ADD COLUMN branch text,
    ADD COLUMN user_name text,
    ADD COLUMN cache_read_tokens bigint,
    ADD COLUMN cache_write_tokens bigint,
    ADD COLUMN reasoning_tokens bigint;
