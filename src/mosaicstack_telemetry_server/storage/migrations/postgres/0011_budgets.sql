-- Schema 11: budgets and their alerts' outbox.
-- A budget is an amount per period over a scope (one instance or all, optionally one project).
-- thresholds: a JSON list of fractions. The webhook secret is stored because signing needs
-- it; the API never returns it.
CREATE TABLE budgets (
    name text PRIMARY KEY,
    amount_usd_micros bigint NOT NULL,
    period text NOT NULL,
    instance_id uuid,
    project text,
    thresholds text NOT NULL,
    webhook_url text,
    webhook_secret text,
    updated_at timestamptz NOT NULL
);

-- One row per alert ever claimed: the UNIQUE key is what makes an alert fire once per
-- threshold per period whatever the number of server processes (the first INSERT wins).
-- The row is also the outbox: the sender delivers it with backoff until delivered_at is set.
CREATE TABLE budget_alerts (
    alert_id text PRIMARY KEY,
    budget text NOT NULL,
    period_start timestamptz NOT NULL,
    kind text NOT NULL,
    threshold text NOT NULL,
    body text NOT NULL,
    webhook_url text,
    created_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    state text NOT NULL,
    delivered_at timestamptz,
    last_error text,
    CONSTRAINT budget_alerts_once UNIQUE (budget, period_start, kind, threshold)
);

CREATE INDEX budget_alerts_due_idx ON budget_alerts (state, next_attempt_at);
