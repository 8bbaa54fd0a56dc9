"""The example service (examples/service/app.py) through FastAPI's TestClient: every
endpoint and its error codes, on SQLite, and on PostgreSQL and MariaDB/MySQL when
``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL`` are set (an unreachable
server is a skip, and a failure when ``CI=true``).

Skipped with a reason when FastAPI is not installed; a failure when ``CI=true``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cdrrating.testing.contract import FakeClock

if os.environ.get("CI") != "true":
    pytest.importorskip("fastapi", reason="the example service needs FastAPI")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

with warnings.catch_warnings():
    # Starlette announces a future httpx successor when its TestClient is imported.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "service"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
JSON = {"content-type": "application/json"}


def load_service() -> ModuleType:
    """examples/service/app.py as a module (it is an example, not an installed package)."""
    if "cdrrating_service_app" in sys.modules:
        return sys.modules["cdrrating_service_app"]
    spec = importlib.util.spec_from_file_location("cdrrating_service_app", SERVICE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_client(url: str, tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    prefix = f"cdrrating_s{uuid.uuid4().hex[:8]}_"
    try:
        app = load_service().create_app(
            url, prefix=prefix, archive_dir=str(tmp_path / "archive"), clock=clock
        )
    except Exception as error:  # an unreachable server
        if os.environ.get("CI") == "true" or url.startswith("sqlite"):
            raise
        pytest.skip(f"{url} is unreachable: {error}")
    cdrs = app.state.cdrs
    try:
        with TestClient(app) as client:
            yield client
    finally:
        cdrs.tables.metadata.drop_all(cdrs.engine)
        cdrs.engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


SERVERS = {"postgresql": "CDRRATING_TEST_POSTGRES_URL", "mysql": "CDRRATING_TEST_MYSQL_URL"}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[TestClient]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    else:
        env = SERVERS[request.param]
        url = os.environ.get(env, "")
        if not url:
            pytest.skip(f"{env} is not set: no server to test the service against")
    yield from make_client(url, tmp_path, clock)


def post_json(client: TestClient, path: str, text: str, method: str = "POST") -> Any:
    """Send JSON text as written (numbers with every digit), not re-encoded by httpx."""
    return client.request(method, path, content=text.encode(), headers=JSON)


def detail(response: Any) -> list[tuple[list[Any], str]]:
    return [(d["loc"], d["type"]) for d in response.json()["detail"]]


def call_body(minutes: int = 0, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "started_at": (NOW - timedelta(minutes=minutes)).isoformat(),
        "destination_number": "442079460000",
        "caller_number": "Reception 100",
        "billsec": 61,
        "duration": 70,
    }
    body.update(kw)
    return body


def with_plan(client: TestClient, tenant: str = "acme", price: str = "0.0125") -> str:
    assert client.put(f"/tenants/{tenant}/plan", json={"currency": "EUR"}).status_code == 200
    text = '{"prefix": "44", "cost_per_minute": ' + price + "}"
    r = post_json(client, f"/tenants/{tenant}/rates", text)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# -- plan settings ----------------------------------------------------------------------------


def test_plan_settings(client: TestClient) -> None:
    assert client.get("/tenants/acme/plan").status_code == 404
    r = client.put("/tenants/acme/plan", json={"currency": "USD", "rounding": "half_even"})
    assert r.status_code == 200
    assert client.get("/tenants/acme/plan").json() == {
        "currency": "USD",
        "rounding": "half_even",
        "timezone": "UTC",
    }
    bad = client.put("/tenants/acme/plan", json={"currency": "usd"})
    assert bad.status_code == 422
    assert detail(bad)[0][0] == ["body", "currency"]
    zone = client.put("/tenants/acme/plan", json={"currency": "USD", "timezone": "Mars/Base"})
    assert zone.status_code == 422
    assert detail(zone) == [(["body", "timezone"], "value_error")]  # refused by PlanSettings


# -- rates ---------------------------------------------------------------------------------


def test_rate_crud_with_exact_decimals(client: TestClient) -> None:
    r = post_json(
        client,
        "/tenants/acme/rates",
        '{"prefix": "44", "destination": "United Kingdom", "cost_per_minute": 999999999999.999999,'
        ' "billing_increment": 60}',
    )
    assert r.status_code == 201, r.text
    rate = r.json()
    assert rate["cost_per_minute"] == "999999999999.999999"  # every digit, as a string
    assert (rate["billing_increment"], rate["status"]) == (60, "active")
    rate_id = rate["id"]
    assert client.get(f"/tenants/acme/rates/{rate_id}").json() == rate
    assert client.get(f"/tenants/other/rates/{rate_id}").status_code == 404  # tenants sealed

    put = post_json(
        client,
        f"/tenants/acme/rates/{rate_id}",
        '{"prefix": "44", "cost_per_minute": "0.0125", "billing_increment": 6}',
        method="PUT",
    )
    assert put.status_code == 200, put.text
    assert (put.json()["cost_per_minute"], put.json()["billing_increment"]) == ("0.0125", 6)
    assert put.json()["destination"] == ""

    patched = post_json(
        client, f"/tenants/acme/rates/{rate_id}", '{"status": "inactive"}', method="PATCH"
    )
    assert patched.json()["status"] == "inactive"
    assert patched.json()["cost_per_minute"] == "0.0125"

    assert client.delete(f"/tenants/acme/rates/{rate_id}").status_code == 204
    assert client.delete(f"/tenants/acme/rates/{rate_id}").status_code == 404
    assert client.get(f"/tenants/acme/rates/{rate_id}").status_code == 404
    gone = client.put(f"/tenants/acme/rates/{rate_id}", json={"prefix": "4", "cost_per_minute": 1})
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"prefix": "44", "cost_per_minute": 0.1234567}', "cost_per_minute"),
        ('{"prefix": "44", "cost_per_minute": -0.01}', "cost_per_minute"),
        ('{"prefix": "44", "cost_per_minute": "ten"}', "cost_per_minute"),
        ('{"prefix": "44", "cost_per_minute": 1e12}', "cost_per_minute"),
        ('{"prefix": "44", "cost_per_minute": 1, "billing_increment": 0}', "billing_increment"),
        ('{"prefix": "44", "cost_per_minute": 1, "status": "paused"}', "status"),
        ('{"cost_per_minute": 1, "prefix": "' + "4" * 51 + '"}', "prefix"),
        (
            '{"prefix": "4", "cost_per_minute": 1, "destination": "' + "x" * 256 + '"}',
            "destination",
        ),
        ('{"cost_per_minute": 1}', "prefix"),
        ('{"prefix": "44", "cost_per_minute": 1, "colour": "red"}', "colour"),
    ],
)
def test_bad_rates_are_422_naming_the_field(client: TestClient, body: str, field: str) -> None:
    r = post_json(client, "/tenants/acme/rates", body)
    assert r.status_code == 422, r.text
    assert ["body", field] in [loc for loc, _ in detail(r)]


def test_a_domain_refusal_is_422_naming_the_field(client: TestClient) -> None:
    r = post_json(client, "/tenants/acme/rates", '{"prefix": "4a", "cost_per_minute": 1}')
    assert r.status_code == 422
    assert detail(r) == [(["body", "prefix"], "value_error")]


def test_malformed_json_is_400(client: TestClient) -> None:
    for text in ('{"prefix": ', '{"prefix": "44", "cost_per_minute": NaN}'):
        r = post_json(client, "/tenants/acme/rates", text)
        assert r.status_code == 400, r.text
        assert detail(r)[0][1] == "json_invalid"


def test_an_ambiguous_rate_is_409(client: TestClient) -> None:
    with_plan(client)
    r = post_json(client, "/tenants/acme/rates", '{"prefix": "44", "cost_per_minute": 2}')
    assert r.status_code == 409
    assert detail(r)[0][1] == "conflict"


def test_rate_list_search_newest_first_and_pages(client: TestClient, clock: FakeClock) -> None:
    for i, name in enumerate(["United Kingdom", "Germany", "UNITED STATES", "France"]):
        clock.advance(seconds=1)
        body = {"prefix": str(40 + i), "destination": name, "cost_per_minute": "0.01"}
        assert client.post("/tenants/acme/rates", json=body).status_code == 201
    found = client.get("/tenants/acme/rates", params={"search": "united"}).json()
    assert [r["destination"] for r in found["items"]] == ["UNITED STATES", "United Kingdom"]
    first = client.get("/tenants/acme/rates", params={"limit": 3}).json()
    assert [r["destination"] for r in first["items"]] == ["France", "UNITED STATES", "Germany"]
    rest = client.get("/tenants/acme/rates", params={"limit": 3, "cursor": first["next_cursor"]})
    assert [r["destination"] for r in rest.json()["items"]] == ["United Kingdom"]
    assert rest.json()["next_cursor"] is None
    assert client.get("/tenants/other/rates").json()["items"] == []
    bad = client.get("/tenants/acme/rates", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert detail(bad) == [(["cursor"], "value_error")]
    assert client.get("/tenants/acme/rates", params={"limit": 0}).status_code == 422


# -- the CDR admin API -----------------------------------------------------------------------


def test_cdr_crud_prices_every_write(client: TestClient) -> None:
    with_plan(client)
    created = client.post("/tenants/acme/cdrs", json=call_body(call_id="x-1"))
    assert created.status_code == 201, created.text
    body = created.json()
    # 61 s at 0.0125/min in 1 s steps: 0.0125 * 61 / 60 = 0.012708333.. rounded up.
    assert (body["cost"], body["currency"], body["status"]) == ("0.012709", "EUR", "RATED")
    assert client.post("/tenants/acme/cdrs", json=call_body(call_id="x-1")).status_code == 409
    assert client.get("/tenants/acme/cdrs/x-1").json() == body
    assert client.get("/tenants/other/cdrs/x-1").status_code == 404

    put = client.put("/tenants/acme/cdrs/x-1", json=call_body(billsec=120, duration=120))
    assert (put.status_code, put.json()["cost"]) == (200, "0.025")
    patched = client.patch("/tenants/acme/cdrs/x-1", json={"disposition": "BUSY"})
    assert (patched.json()["cost"], patched.json()["status"]) == ("0.00", "UNANSWERED")
    assert patched.json()["billsec"] == 120
    assert client.patch("/tenants/acme/cdrs/nope", json={"billsec": 1}).status_code == 404
    assert client.put("/tenants/acme/cdrs/nope", json=call_body()).status_code == 404

    assert client.delete("/tenants/acme/cdrs/x-1").status_code == 204
    assert client.delete("/tenants/acme/cdrs/x-1").status_code == 404
    assert client.get("/tenants/acme/cdrs/x-1").status_code == 404


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"caller_number": "1" * 51}, ["body", "caller_number"]),
        ({"destination_number": "4" * 51}, ["body", "destination_number"]),
        ({"direction": "x" * 51}, ["body", "direction"]),
        ({"billsec": -1}, ["body", "billsec"]),
        ({"duration": -1}, ["body", "duration"]),
        ({"started_at": "2026-03-02T10:00:00"}, ["body", "started_at"]),  # no offset
        ({"call_id": ""}, ["body", "call_id"]),
        ({"direction": "sideways"}, ["body", "direction"]),  # refused by CDR
        ({"billsec": 80, "duration": 70}, ["body", "billsec"]),  # refused by CDR
    ],
)
def test_bad_cdrs_are_422_naming_the_field(
    client: TestClient, change: dict[str, Any], loc: list[str]
) -> None:
    r = client.post("/tenants/acme/cdrs", json=call_body(call_id="c") | change)
    assert r.status_code == 422, r.text
    assert loc in [d[0] for d in detail(r)]


def test_bad_patches_are_422_naming_the_field_and_change_nothing(client: TestClient) -> None:
    rate_id = with_plan(client)
    assert client.post("/tenants/acme/cdrs", json=call_body(call_id="p")).status_code == 201
    before = client.get("/tenants/acme/cdrs/p").json(), client.get(f"/tenants/acme/rates/{rate_id}")
    for path, change, field in [
        (f"/tenants/acme/rates/{rate_id}", {"billing_increment": 0}, "billing_increment"),
        (f"/tenants/acme/rates/{rate_id}", {"cost_per_minute": "-1"}, "cost_per_minute"),
        (f"/tenants/acme/rates/{rate_id}", {"prefix": "4 4"}, "prefix"),
        ("/tenants/acme/cdrs/p", {"billsec": -1}, "billsec"),
        ("/tenants/acme/cdrs/p", {"destination_number": "4" * 51}, "destination_number"),
        ("/tenants/acme/cdrs/p", {"disposition": "MAYBE"}, "disposition"),
    ]:
        r = client.patch(path, json=change)
        assert (r.status_code, detail(r)[0][0]) == (422, ["body", field]), r.text
    after = client.get("/tenants/acme/cdrs/p").json(), client.get(f"/tenants/acme/rates/{rate_id}")
    assert (after[0], after[1].json()) == (before[0], before[1].json())


def test_cdr_list_searches_four_fields_case_insensitively_newest_first(
    client: TestClient,
) -> None:
    rows = [
        call_body(0, call_id="a", caller_number="RECEPTION"),
        call_body(1, call_id="b", destination_number="4930123"),
        call_body(2, call_id="c", direction="inbound"),
        call_body(3, call_id="d", disposition="NO ANSWER", billsec=0),
        call_body(4, call_id="e", caller_number="desk"),
    ]
    for row in rows:
        assert client.post("/tenants/acme/cdrs", json=row).status_code == 201

    def ids(**params: Any) -> list[str]:
        page = client.get("/tenants/acme/cdrs", params=params).json()
        return [c["call_id"] for c in page["items"]]

    assert ids() == ["a", "b", "c", "d", "e"]  # newest first
    assert ids(search="reception") == ["a", "b", "c", "d"]  # "Reception 100" by default
    assert ids(search="INBOUND") == ["c"]
    assert ids(search="no_answer") == ["d"]
    assert ids(search="4930") == ["b"]
    assert ids(search="DESK") == ["e"]
    since, until = (
        (NOW - timedelta(minutes=3)).isoformat(),
        (NOW - timedelta(minutes=1)).isoformat(),
    )
    assert ids(since=since, until=until) == ["c", "d"]
    assert ids(limit=2) == ["a", "b"]
    bad = client.get("/tenants/acme/cdrs", params={"since": "yesterday"})
    assert (bad.status_code, detail(bad)) == (422, [(["query", "since"], "value_error")])
    assert client.get("/tenants/acme/cdrs", params={"colour": "red"}).status_code == 422


# -- the call store ----------------------------------------------------------------------------


def test_start_then_completion_then_lookup_by_uuid(client: TestClient) -> None:
    with_plan(client)
    call = str(uuid.uuid4())
    start = client.put(f"/tenants/acme/calls/{call}/start", json=call_body(billsec=0, duration=0))
    assert (start.status_code, start.json()["in_progress"], start.json()["cost"]) == (
        200,
        True,
        None,
    )
    done = client.put(f"/tenants/acme/calls/{call}/completion", json=call_body())
    assert (done.json()["in_progress"], done.json()["cost"]) == (False, "0.012709")
    late = client.put(f"/tenants/acme/calls/{call}/start", json=call_body(billsec=0, duration=0))
    assert (late.json()["in_progress"], late.json()["cost"]) == (False, "0.012709")
    assert client.get(f"/tenants/acme/calls/{call}").json() == late.json()
    assert client.get(f"/tenants/acme/calls/{uuid.uuid4()}").status_code == 404
    assert client.get("/tenants/acme/calls/not-a-uuid").status_code == 422
    bad = client.put("/tenants/acme/calls/not-a-uuid/completion", json=call_body())
    assert bad.status_code == 422


def test_completion_prices_with_the_rates_as_they_stand(client: TestClient) -> None:
    rate_id = with_plan(client)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    body = call_body(billsec=60, duration=60)

    def complete(tenant: str, call: str) -> dict[str, Any]:
        r = client.put(f"/tenants/{tenant}/calls/{call}/completion", json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert complete("acme", first)["cost"] == "0.0125"
    client.patch(f"/tenants/acme/rates/{rate_id}", json={"cost_per_minute": "0.5"})
    assert complete("acme", second)["cost"] == "0.50"
    client.put("/tenants/acme/plan", json={"currency": "USD"})
    assert complete("acme", first)["currency"] == "USD"
    # A tenant without a plan: its calls are stored UNRATED, never priced in a guess.
    other = complete("other", first)
    assert (other["status"], other["reason"], other["cost"]) == ("UNRATED", "NO_PLAN", None)


def test_export_streams_csv_and_json(client: TestClient) -> None:
    with_plan(client)
    for i in range(5):
        caller = 'Desk "A", floor 2' if i == 2 else f"desk {i}"
        client.post("/tenants/acme/cdrs", json=call_body(i, call_id=f"e{i}", caller_number=caller))
    listed = client.get("/tenants/acme/cdrs").json()["items"]

    r = client.get("/tenants/acme/cdrs/export", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    assert [row["call_id"] for row in rows] == [c["call_id"] for c in listed]
    assert rows[2]["caller_number"] == 'Desk "A", floor 2'
    assert rows[0]["cost"] == listed[0]["cost"]
    assert rows[0]["in_progress"] == "false"

    as_json = client.get("/tenants/acme/cdrs/export", params={"format": "json"})
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == listed
    since = (NOW - timedelta(minutes=1)).isoformat()
    recent = client.get("/tenants/acme/cdrs/export", params={"format": "json", "since": since})
    assert [c["call_id"] for c in recent.json()] == ["e0", "e1"]
    assert client.get("/tenants/acme/cdrs/export", params={"format": "xml"}).status_code == 422


def test_prune_archives_first_then_deletes_older_than_thirty_days(
    client: TestClient,
) -> None:
    for days in (40, 31, 29, 1):
        body = call_body(call_id=f"d{days}", started_at=(NOW - timedelta(days=days)).isoformat())
        assert client.post("/tenants/acme/cdrs", json=body).status_code == 201
    r = client.post("/prune")
    assert r.status_code == 200
    assert r.json()["pruned"] == 2
    archived = [json.loads(line) for line in Path(r.json()["archive"]).read_text().splitlines()]
    assert [a["call_id"] for a in archived] == ["d40", "d31"]
    left = client.get("/tenants/acme/cdrs").json()["items"]
    assert [c["call_id"] for c in left] == ["d1", "d29"]
    assert client.post("/prune", params={"days": 0}).status_code == 422


def test_openapi_schema_shows_exact_money(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    rate_in = schema["RateIn"]["properties"]["cost_per_minute"]
    assert {"type": "string", "pattern": rate_in["anyOf"][1]["pattern"]} == rate_in["anyOf"][1]
    assert rate_in["anyOf"][0]["minimum"] == 0
    out = schema["RateOut"]["properties"]["cost_per_minute"]
    assert out["type"] == "string"


def test_decimal_strings_and_numbers_agree(client: TestClient) -> None:
    with_plan(client)
    a = post_json(client, "/tenants/acme/rates", '{"prefix": "4420", "cost_per_minute": 0.1}')
    b = post_json(client, "/tenants/acme/rates", '{"prefix": "4421", "cost_per_minute": "0.1"}')
    assert a.json()["cost_per_minute"] == b.json()["cost_per_minute"] == "0.10"
    assert Decimal(a.json()["cost_per_minute"]) == Decimal("0.1")


# -- the charging-CDR list API (sessions) ---------------------------------------------------

OCPI_CDR = """{
  "country_code": "BE", "party_id": "BEC", "id": "ocpi-1",
  "start_date_time": "2026-03-01T21:39:09Z", "end_date_time": "2026-03-01T23:37:32Z",
  "cdr_token": {"uid": "012345678", "type": "RFID", "contract_id": "DE8ACC12E46L89"},
  "cdr_location": {"id": "LOC1", "country": "BEL", "evse_id": "BE*BEC*E041503003"},
  "currency": "EUR",
  "charging_periods": [{"start_date_time": "2026-03-01T21:39:09Z",
    "dimensions": [{"type": "ENERGY", "volume": 15.342000000001}]}],
  "total_cost": {"excl_vat": 999999999999.999999, "incl_vat": 4.40},
  "total_energy": 15.342, "total_time": 1.973,
  "last_updated": "2026-03-01T23:40:00Z"
}"""


def listed_session(i: int, **kw: Any) -> dict[str, Any]:
    start = NOW - timedelta(hours=10 - i)
    body: dict[str, Any] = {
        "id": f"s{i}",
        "startedAt": start.isoformat(),
        "endedAt": (start + timedelta(minutes=30)).isoformat(),
        "consumed": 1000 * i,
        "currency": "EUR",
        "cost": f"{i}.25",
    }
    body.update(kw)
    return body


def session_ids(client: TestClient, **params: Any) -> tuple[list[str], Any]:
    r = client.get("/sessions", params=params)
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["items"]], r.json()


def test_sessions_are_stored_exactly_from_ocpi_json(client: TestClient) -> None:
    r = post_json(client, "/sessions/ocpi-1", OCPI_CDR, method="PUT")
    assert r.status_code == 200, r.text
    stored = r.json()
    assert (stored["id"], stored["consumed"], stored["cost"]) == (
        "ocpi-1",
        15342,
        "999999999999.999999",  # every digit of the JSON number, as a string
    )
    period = stored["chargingPeriods"][0]["dimensions"][0]
    assert period["volume"] == "15.342000000001"
    [listed] = client.get("/sessions").json()["items"]
    assert listed["cost"] == "999999999999.999999"
    assert listed["costInclVat"] == "4.4"


def test_session_writes_that_are_refused(client: TestClient) -> None:
    mismatch = client.put("/sessions/other", json=listed_session(1))
    assert (mismatch.status_code, detail(mismatch)) == (422, [(["id"], "value_error")])
    bad = client.put("/sessions/s1", json=listed_session(1, consumed=-5))
    assert bad.status_code == 422
    assert "consumed" in detail(bad)[0][0][0]
    assert post_json(client, "/sessions/s1", '{"id": ', method="PUT").status_code == 400


def test_session_list_filters_sorts_pages_and_picks_fields(client: TestClient) -> None:
    for i in range(1, 6):
        text = json.dumps(listed_session(i))[:-1] + f', "kwhPrice": 0.{i}5}}'
        assert post_json(client, f"/sessions/s{i}", text, method="PUT").status_code == 200
    ongoing = listed_session(6, endedAt=None, cost=None)
    assert client.put("/sessions/s6", json=ongoing).status_code == 200

    ids, _ = session_ids(client)
    assert ids == ["s1", "s2", "s3", "s4", "s5"]  # updated_at ascending; ongoing left out
    ids, _ = session_ids(client, include_ongoing=True)
    assert ids[-1] == "s6"
    ids, _ = session_ids(client, filter=json.dumps({"consumed": {"$gte": 3000}}), order="desc")
    assert ids == ["s5", "s4", "s3"]
    # A fractional operand compares with the exact number stored from the request body.
    ids, _ = session_ids(client, filter=json.dumps({"extra.kwhPrice": {"$gt": 0.35}}))
    assert ids == ["s4", "s5"]
    _, page = session_ids(client, fields="id,cost", filter='{"id": "s2"}')
    assert page["items"] == [{"id": "s2", "cost": "2.25"}]

    ids, first = session_ids(client, limit=2)
    assert ids == ["s1", "s2"]
    ids, second = session_ids(client, limit=2, next_page_cursor=first["next_page_cursor"])
    assert ids == ["s3", "s4"]
    ids, _ = session_ids(client, limit=2, previous_page_cursor=second["previous_page_cursor"])
    assert ids == ["s1", "s2"]


@pytest.mark.parametrize(
    ("params", "status", "loc"),
    [
        ({"filter": "{not json"}, 422, ["filter"]),
        ({"filter": '{"colour": "red"}'}, 422, ["filter.colour"]),
        ({"next_page_cursor": "forged"}, 400, ["next_page_cursor"]),
        ({"order": "sideways"}, 422, ["order"]),  # refused by the repository
        ({"limit": 0}, 422, ["limit"]),
    ],
)
def test_session_list_errors_name_the_parameter(
    client: TestClient, params: dict[str, Any], status: int, loc: list[str]
) -> None:
    r = client.get("/sessions", params=params)
    assert r.status_code == status, r.text
    assert detail(r)[0][0] == loc


def test_both_cursors_at_once_are_refused(client: TestClient) -> None:
    for i in range(1, 4):
        client.put(f"/sessions/s{i}", json=listed_session(i))
    _, first = session_ids(client, limit=1)
    cursor = first["next_page_cursor"]
    r = client.get("/sessions", params={"next_page_cursor": cursor, "previous_page_cursor": cursor})
    assert (r.status_code, detail(r)[0][0]) == (400, ["previous_page_cursor"])
