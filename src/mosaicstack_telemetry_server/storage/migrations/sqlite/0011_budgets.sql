-- Schema 11: budgets and their alerts' outbox.
-- A budget is an amount per period over a scope (one instance or all, optionally one project).
-- thresholds: a JSON list of fractions. The webhook secret is stored because signing needs
-- it; the API never returns it.
CREATE TABLE budgets (
    name TEXT PRIMARY KEY,
    amount_usd_micros INTEGER NOT NULL,
    period TEXT NOT NULL,
    instance_id TEXT,
    project TEXT,
    thresholds TEXT NOT NULL,
    webhook_url TEXT,
    webhook_secret TEXT,
    updated_at TEXT NOT NULL
);

-- One row per alert ever claimed: the UNIQUE key is what makes an alert fire once per
-- threshold per period whatever the number of server processes (the first INSERT wins).
-- The row is also the outbox: the sender delivers it with backoff until delivered_at is set.
CREATE TABLE budget_alerts (
    alert_id TEXT PRIMARY KEY,
    budget TEXT NOT NULL,
    period_start TEXT NOT NULL,
    kind TEXT NOT NULL,
    threshold TEXT NOT NULL,
    body TEXT NOT NULL,
    webhook_url TEXT,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    state TEXT NOT NULL,
    delivered_at TEXT,
    last_error TEXT,
    CONSTRAINT budget_alerts_once UNIQUE (budget, period_start, kind, threshold)
);

CREATE INDEX budget_alerts_due_idx ON budget_alerts (state, next_attempt_at);
