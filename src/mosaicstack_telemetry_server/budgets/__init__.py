"""Budgets: an amount per period over a scope, its status, and the alerts it sends.

`model.py` the wire shapes, `periods.py` the period and forecast arithmetic, `spend.py` the
spend (the usage code path), `alerts.py` which alerts are due and what they say, `backoff.py`
the retry rule, `webhook.py` the signed POST, `service.py` the background evaluator and
sender, `routes.py` the HTTP edge. Storage queries live in `storage/_budgets.py`.
"""
