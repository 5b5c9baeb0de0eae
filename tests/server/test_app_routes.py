"""The app's route table: every route answers where it always has, and the document lists them.

Pins what `create_app` wires (routes/, probes, dashboard, OpenAPI), so moving a route between
modules cannot drop one, rename an operation or reorder the document unnoticed.
"""

from __future__ import annotations

import httpx
import pytest
from _api_helpers import Served

# (path, method, operationId, needs a bearer key), in the document's order.
OPERATIONS = [
    ("/v1/events/batch", "post", "post_events_v1_events_batch_post", True),
    ("/v1/predictions/batch", "post", "post_predictions_v1_predictions_batch_post", True),
    ("/v1/usage", "get", "get_usage_v1_usage_get", True),
    ("/v1/health", "get", "health_v1_health_get", False),
    ("/v1/budgets/{name}", "put", "put_budget_v1_budgets__name__put", True),
    ("/v1/budgets/{name}", "delete", "delete_budget_v1_budgets__name__delete", True),
    ("/v1/budgets", "get", "list_budgets_v1_budgets_get", True),
    ("/v1/budgets/status", "get", "budgets_status_v1_budgets_status_get", True),
    # The OTLP receiver (otlp/routes.py), wired by the app after the contract's own routes.
    ("/v1/logs", "post", "post_logs_v1_logs_post", True),
    ("/v1/metrics", "post", "post_metrics_v1_metrics_post", True),
    ("/v1/traces", "post", "post_traces_v1_traces_post", True),
]

# Routes kept out of the document: probes, dashboard, the document itself and its viewer.
UNDOCUMENTED = [
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/explorer"),
    ("GET", "/dashboard/budgets"),
    ("GET", "/dashboard/sign-in"),
    ("POST", "/dashboard/sign-in"),
    ("POST", "/dashboard/sign-out"),
    ("GET", "/dashboard/static/dashboard.css"),
]


def test_the_document_lists_the_v1_operations_in_order(shared_server: Served) -> None:
    document = httpx.get(shared_server.url + "/openapi.json").json()
    listed = [
        (path, method, operation["operationId"], "security" in operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
    assert listed == OPERATIONS
    for path, method, _, secured in OPERATIONS:
        if secured:
            assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}]
    usage = document["paths"]["/v1/usage"]["get"]["parameters"]
    assert [parameter["name"] for parameter in usage] == [
        "from",
        "to",
        "group_by",
        "instance_id",
        "project",
        "branch",
        "user",
    ]
    assert all(parameter["description"] for parameter in usage)


@pytest.mark.parametrize(("method", "path"), UNDOCUMENTED)
def test_every_undocumented_route_is_still_served(
    shared_server: Served, method: str, path: str
) -> None:
    # No key, no form: the answer may be a refusal or a redirect, but never "no such route".
    response = httpx.request(method, shared_server.url + path, follow_redirects=False)
    assert response.status_code not in (404, 405), response.text
