-- Schema 4: dashboard sign-in sessions, shared by every server process on this database.
-- Only a hash of the session token is stored (the cookie holds the token); a session is bound
-- to the hash of the key that signed in, so revoking the key ends its sessions.

CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX dashboard_sessions_expires_at_idx ON dashboard_sessions (expires_at);
