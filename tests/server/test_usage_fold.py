"""The usage rollups folded in the background: batches' answers say what was stored, answers
count every accepted event before and after the fold, and a fold killed half-way leaves
nothing behind."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _api_helpers import make_event, serve, wait_until
from _usage_helpers import rollups_and_recount

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.usage_fold import UsageFolder

_CLIENTS = 8
_BATCHES = 12
_BATCH = 100


def _events(instance_id: uuid.UUID, rng: random.Random) -> list[dict[str, Any]]:
    """A batch spread over the last ten days: every fold touches many days and instances."""
    now = datetime.now(UTC)
    return [
        make_event(
            instance_id,
            timestamp=(now - timedelta(minutes=rng.randrange(10 * 24 * 60))).isoformat(),
            model=rng.choice(["m-a", "m-b", "m-c"]),
            task_type=rng.choice(["implementation", "testing", "debugging"]),
            outcome=rng.choice(["success", "failure"]),
        )
        for _ in range(_BATCH)
    ]


def _stored(database: str, ids: list[str]) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                (str(ids).replace("'", '"'),),
            ).fetchone()[0]
        )


def _cursor_at_end(database: str) -> bool:
    with closing(sqlite3.connect(database)) as conn:
        last, newest = conn.execute(
            "SELECT last_id, (SELECT max(id) FROM events) FROM usage_cursor"
        ).fetchone()
    return bool(last == newest)


def _total(admin: httpx.Client) -> int:
    """Every event's count, as `GET /v1/usage` answers an admin key."""
    now = datetime.now(UTC)
    span = {"from": (now - timedelta(days=11)).isoformat(), "to": now.isoformat()}
    response = admin.get("/v1/usage", params=span)
    assert response.status_code == 200, response.text
    return int(response.json()["totals"]["tasks"])


def test_eight_clients_get_answers_that_say_what_was_stored_while_the_fold_runs(
    sqlite_url: str,
) -> None:
    database = sqlite_url.removeprefix("sqlite:///")
    with serve(sqlite_url) as served:
        instances = [uuid.uuid4() for _ in range(_CLIENTS)]
        keys = [served.issue(instance_id)[0] for instance_id in instances]
        admin = served.client(issue_api_key(served.storage, None, "admin", admin=True)[0])
        answers: list[tuple[int, list[str]]] = []
        lock = threading.Lock()

        def post(index: int) -> None:
            rng = random.Random(index)
            client = served.client(keys[index])
            for _ in range(_BATCHES):
                batch = _events(instances[index], rng)
                response = client.post("/v1/events/batch", json={"events": batch})
                with lock:
                    answers.append((response.status_code, [e["event_id"] for e in batch]))

        # The test folds too, as a second server process would: folds and inserts contend.
        folder = UsageFolder(served.storage, interval=0.05)
        folder.start()
        threads = [threading.Thread(target=post, args=(index,)) for index in range(_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert folder.stop(30)
        assert len(answers) == _CLIENTS * _BATCHES
        stored_total = 0
        for status, ids in answers:
            stored = _stored(database, ids)
            if status == 200:
                assert stored == len(ids)
            else:  # refused: nothing of it was stored
                assert status == 503
                assert stored == 0
            stored_total += stored
        # Every accepted event is counted, folded or not, and the server's fold catches up.
        assert _total(admin) == stored_total
        wait_until(lambda: _cursor_at_end(database), 30, "the background fold to catch up")
        assert _total(admin) == stored_total
    for name, (rows, recount) in rollups_and_recount(sqlite_url).items():
        assert rows == recount, name
