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
-- upgrade re-sends none.

ALTER TABLE budgets ADD COLUMN revision text NOT NULL DEFAULT '';

ALTER TABLE budget_alerts ADD COLUMN revision text NOT NULL DEFAULT '';

ALTER TABLE budget_alerts DROP CONSTRAINT budget_alerts_once;

ALTER TABLE budget_alerts
    ADD CONSTRAINT budget_alerts_once UNIQUE (budget, revision, period_start, kind, threshold);
