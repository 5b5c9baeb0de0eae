-- Schema 8: the optional fields of event schema 1.1, NULL on every 1.0 event (stored before or
-- after). `user` is a reserved word in SQL, so its column is user_name.
ALTER TABLE events ADD COLUMN project TEXT;
ALTER TABLE events ADD COLUMN branch TEXT;
ALTER TABLE events ADD COLUMN user_name TEXT;
ALTER TABLE events ADD COLUMN cache_read_tokens INTEGER;
ALTER TABLE events ADD COLUMN cache_write_tokens INTEGER;
ALTER TABLE events ADD COLUMN reasoning_tokens INTEGER;
