"""cdrrating.fastapi: exact JSON request bodies and the library's errors as HTTP statuses,
on a minimal app (the example service tests them again end to end)."""

from __future__ import annotations

import os
import warnings
from decimal import Decimal
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("fastapi", reason="cdrrating.fastapi needs FastAPI")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

with warnings.catch_warnings():
    # Starlette announces a future httpx successor when its TestClient is imported.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from cdrrating import Conflict, NotFound, PlanError, StorageError, ValidationError
from cdrrating.fastapi import ExactJSONRoute, add_error_handlers
from cdrrating.pydantic import Money


class Body(BaseModel):
    amount: Money
    raw: Any = None


RAISED: dict[str, Exception] = {
    "not-found": NotFound("no rate with id 'r1'"),
    "conflict": Conflict("a CDR with call_id 'c1' is already stored"),
    "plan": PlanError("rates", "two rates", "one active rate per prefix"),
    "cursor": ValidationError("cursor", "zz", "a cursor returned by a page"),
    "value": ValidationError("billsec", -1, "an int >= 0"),
    "storage": StorageError("writing CDRs failed: OperationalError: host db-7 unreachable"),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app, api = FastAPI(), APIRouter(route_class=ExactJSONRoute)
    add_error_handlers(app)

    @api.post("/echo")
    def echo(body: Body) -> dict[str, Any]:
        return {"amount": str(body.amount), "raw": repr(body.raw)}

    @api.get("/raise/{name}")
    def fail(name: str) -> None:
        raise RAISED[name]

    app.include_router(api)
    return TestClient(app, raise_server_exceptions=False)


def send(client: TestClient, text: str) -> Any:
    return client.post("/echo", content=text.encode(), headers={"content-type": "application/json"})


def test_json_numbers_reach_the_model_as_exact_decimals(client: TestClient) -> None:
    r = send(client, '{"amount": 999999999999.999999, "raw": [0.1, 2, 1e-3]}')
    assert r.status_code == 200, r.text
    assert r.json() == {
        "amount": "999999999999.999999",
        "raw": repr([Decimal("0.1"), 2, Decimal("0.001")]),
    }


@pytest.mark.parametrize("text", ['{"amount": ', '{"amount": NaN}', '{"amount": -Infinity}'])
def test_malformed_json_is_400(client: TestClient, text: str) -> None:
    r = send(client, text)
    assert r.status_code == 400
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_a_model_refusal_is_422_naming_the_field(client: TestClient) -> None:
    r = send(client, '{"amount": 0.0000001}')
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "amount"], "exact_money")
    assert "6 decimal places" in error["msg"]


@pytest.mark.parametrize(
    ("name", "status", "kind", "loc"),
    [
        ("not-found", 404, "not_found", []),
        ("conflict", 409, "conflict", []),
        ("plan", 409, "plan_conflict", ["rates"]),
        ("cursor", 400, "value_error", ["cursor"]),
        ("value", 422, "value_error", ["billsec"]),
        ("storage", 503, "storage_unavailable", []),
    ],
)
def test_library_errors_become_statuses(
    client: TestClient, name: str, status: int, kind: str, loc: list[str]
) -> None:
    r = client.get(f"/raise/{name}")
    assert r.status_code == status
    [error] = r.json()["detail"]
    assert (error["type"], error["loc"]) == (kind, loc)
    if name == "storage":
        assert "db-7" not in r.text  # the driver's message stays in the log
    else:
        assert error["msg"] == str(RAISED[name])
