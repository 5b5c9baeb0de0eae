-- Schema 14: a budget's alerts belong to its revision, not only to its name.
--
-- The outbox's key was (budget, period start, kind, threshold): a budget deleted and created
-- again under the same name, or given a new amount, found its thresholds already claimed for
-- the period and never alerted at them again. A budget now has a revision, a new random id
-- whenever it is created or its terms (amount, period, scope, thresholds) change, and the key
-- and the alert's id include it (`storage/_budgets.py`, `budgets/alerts.py`).
--
-- The budgets and alerts already stored take the revision "": an alert's id for revision ""
-- is the id it had before, so an unchanged budget finds this period's alerts claimed and the
-- upgrade re-sends none. SQLite cannot change a table's UNIQUE constraint: the outbox is
-- copied into a table with the new key.

ALTER TABLE budgets ADD COLUMN revision TEXT NOT NULL DEFAULT '';

CREATE TABLE budget_alerts_v14 (
    alert_id TEXT PRIMARY KEY,
    budget TEXT NOT NULL,
    revision TEXT NOT NULL DEFAULT '',
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
    CONSTRAINT budget_alerts_once UNIQUE (budget, revision, period_start, kind, threshold)
);

INSERT INTO budget_alerts_v14 (alert_id, budget, revision, period_start, kind, threshold, body,
    webhook_url, created_at, attempts, next_attempt_at, state, delivered_at, last_error)
SELECT alert_id, budget, '', period_start, kind, threshold, body, webhook_url, created_at,
    attempts, next_attempt_at, state, delivered_at, last_error
FROM budget_alerts;

DROP TABLE budget_alerts;

ALTER TABLE budget_alerts_v14 RENAME TO budget_alerts;

CREATE INDEX budget_alerts_due_idx ON budget_alerts (state, next_attempt_at);
