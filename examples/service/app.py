"""A tenant CDR and rate service, and a charging-session list, over cdrrating: run it with

    uvicorn --app-dir examples/service app:create_app --factory

SQLite (./service.sqlite3) unless CDRRATING_SERVICE_DB names another SQLAlchemy URL
(postgresql+psycopg://..., mysql+pymysql://...). See docs/service.md.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Response
from fastapi import Query as InQuery
from fastapi.responses import StreamingResponse

from cdrrating import ValidationError
from cdrrating.charging import ChargingSession
from cdrrating.fastapi import ExactJSONRoute, add_error_handlers
from cdrrating.plancache import PlanCache
from cdrrating.pydantic import (
    CallBody,
    CDRCreate,
    CDROut,
    CDRPatch,
    ExportListing,
    Listing,
    Page,
    PlanIn,
    RateIn,
    RateOut,
    RatePatch,
    SessionListing,
    dumps,
)
from cdrrating.repository import system_clock
from cdrrating.sql import SQLCDRRepository, SQLRateRepository, SQLSessionRepository, define_tables
from cdrrating.sqlplans import (
    SQLPlanGenerations,
    SQLPlanSettingsRepository,
    define_plan_generations_table,
    define_plan_settings_table,
)
from cdrrating.streaming import MEDIA_TYPES, stream_records


def create_app(
    url: str | None = None, *, prefix: str | None = None, cursor_key: str | None = None,
    archive_dir: str | None = None, clock: Any = system_clock,
) -> FastAPI:  # fmt: skip
    url = url or os.environ.get("CDRRATING_SERVICE_DB", "sqlite:///service.sqlite3")
    key = cursor_key or os.environ.get("CDRRATING_CURSOR_KEY")
    prefix = prefix or os.environ.get("CDRRATING_SERVICE_TABLE_PREFIX", "cdrrating_")
    archive = Path(archive_dir or os.environ.get("CDRRATING_ARCHIVE_DIR", "archive"))
    tables = define_tables(prefix)
    cdrs = SQLCDRRepository(url, tables=tables, cursor_key=key, clock=clock, create=True)
    rates = SQLRateRepository(cdrs.engine, tables=tables, cursor_key=key, clock=clock, create=True)
    settings_table = define_plan_settings_table(prefix, tables.metadata)
    settings = SQLPlanSettingsRepository(cdrs.engine, table=settings_table, create=True)
    counters = define_plan_generations_table(prefix, tables.metadata)
    generations = SQLPlanGenerations(cdrs.engine, table=counters, create=True)
    # Write rates through plans.rates: every worker's plans then stay fresh.
    plans = PlanCache(rates, settings, generations=generations)
    sessions = SQLSessionRepository(cdrs.engine, tables=tables, cursor_key=key, clock=clock)
    app, api = FastAPI(title="cdrrating service"), APIRouter(route_class=ExactJSONRoute)
    app.state.cdrs, app.state.plans = cdrs, plans
    add_error_handlers(app)

    # -- plan settings and rates ---------------------------------------------------------
    @api.put("/tenants/{tenant}/plan")
    def put_plan(tenant: str, body: PlanIn) -> PlanIn:
        return PlanIn.from_settings(plans.put_settings(tenant, body.to_settings()))

    @api.get("/tenants/{tenant}/plan")
    def get_plan(tenant: str) -> PlanIn:
        return PlanIn.from_settings(plans.settings(tenant))

    @api.post("/tenants/{tenant}/rates", status_code=201)
    def add_rate(tenant: str, body: RateIn) -> RateOut:
        return RateOut.from_stored(plans.rates.add(body.to_rate(tenant=tenant)))

    @api.get("/tenants/{tenant}/rates")
    def list_rates(tenant: str, params: Annotated[Listing, InQuery()]) -> Page[RateOut]:
        return Page[RateOut].of(plans.rates.query(params.to_query(tenant)), RateOut.from_stored)

    @api.get("/tenants/{tenant}/rates/{rate_id}")
    def get_rate(tenant: str, rate_id: str) -> RateOut:
        return RateOut.from_stored(plans.rates.get(rate_id, tenant=tenant))

    @api.put("/tenants/{tenant}/rates/{rate_id}")
    def replace_rate(tenant: str, rate_id: str, body: RateIn) -> RateOut:
        new = body.to_rate(tenant=tenant, id=rate_id)
        return RateOut.from_stored(plans.rates.replace(new, tenant=tenant))

    @api.patch("/tenants/{tenant}/rates/{rate_id}")
    def patch_rate(tenant: str, rate_id: str, body: RatePatch) -> RateOut:
        return RateOut.from_stored(plans.rates.update(rate_id, body.changes(), tenant=tenant))

    @api.delete("/tenants/{tenant}/rates/{rate_id}", status_code=204)
    def delete_rate(tenant: str, rate_id: str) -> None:
        plans.rates.delete(rate_id, tenant=tenant)

    # -- CDRs: every write is priced with the tenant's current plan -----------------------
    @api.post("/tenants/{tenant}/cdrs", status_code=201)
    def add_cdr(tenant: str, body: CDRCreate) -> CDROut:
        return CDROut.from_stored(cdrs.add(plans.rate(body.to_cdr(tenant=tenant))))

    @api.get("/tenants/{tenant}/cdrs")
    def list_cdrs(tenant: str, params: Annotated[Listing, InQuery()]) -> Page[CDROut]:
        return Page[CDROut].of(cdrs.query(params.to_query(tenant)), CDROut.from_stored)

    @api.get("/tenants/{tenant}/cdrs/export")
    def export_cdrs(tenant: str, params: Annotated[ExportListing, InQuery()]) -> StreamingResponse:
        chunks = stream_records(
            cdrs, params.to_query(tenant), format=params.format, columns=list(CDROut.model_fields),
            convert=lambda c: CDROut.from_stored(c).model_dump(mode="json"),
        )  # fmt: skip
        return StreamingResponse(chunks, media_type=MEDIA_TYPES[params.format])

    @api.get("/tenants/{tenant}/cdrs/{call_id}")
    def get_cdr(tenant: str, call_id: str) -> CDROut:
        return CDROut.from_stored(cdrs.get(call_id, tenant=tenant))

    @api.put("/tenants/{tenant}/cdrs/{call_id}")
    def replace_cdr(tenant: str, call_id: str, body: CallBody) -> CDROut:
        cdr = plans.rate(body.to_cdr(call_id, tenant=tenant))
        return CDROut.from_stored(cdrs.replace(cdr, tenant=tenant))

    @api.patch("/tenants/{tenant}/cdrs/{call_id}")
    def patch_cdr(tenant: str, call_id: str, body: CDRPatch) -> CDROut:
        # Priced again, then written whole (last writer wins, as with PUT): the stored
        # cost always belongs to the stored fields.
        new = plans.rate(body.apply(cdrs.get(call_id, tenant=tenant).cdr))
        return CDROut.from_stored(cdrs.replace(new, tenant=tenant))

    @api.delete("/tenants/{tenant}/cdrs/{call_id}", status_code=204)
    def delete_cdr(tenant: str, call_id: str) -> None:
        cdrs.delete(call_id, tenant=tenant)

    # -- the call store: start row, completion, lookup by UUID, retention -----------------
    @api.put("/tenants/{tenant}/calls/{call_id}/start")
    def start_call(tenant: str, call_id: uuid.UUID, body: CallBody) -> CDROut:
        cdr = body.to_cdr(str(call_id), tenant=tenant)
        return CDROut.from_stored(cdrs.upsert(cdr, in_progress=True))

    @api.put("/tenants/{tenant}/calls/{call_id}/completion")
    def complete_call(tenant: str, call_id: uuid.UUID, body: CallBody) -> CDROut:
        cdr = plans.rate(body.to_cdr(str(call_id), tenant=tenant))
        return CDROut.from_stored(cdrs.upsert(cdr))

    @api.get("/tenants/{tenant}/calls/{call_id}")
    def get_call(tenant: str, call_id: uuid.UUID) -> CDROut:
        return CDROut.from_stored(cdrs.get(str(call_id), tenant=tenant))

    @api.post("/prune")
    def prune(days: Annotated[int, InQuery(ge=1)] = 30) -> dict[str, Any]:
        archive.mkdir(parents=True, exist_ok=True)
        path = archive / f"cdrs-{uuid.uuid4().hex}.jsonl"  # a file per run: reruns never append
        with path.open("w", encoding="utf-8") as out:

            def keep(rows: Any) -> None:  # on disk before prune deletes anything
                out.writelines(json.dumps(r.to_mapping()) + "\n" for r in rows)
                out.flush()
                os.fsync(out.fileno())

            pruned = cdrs.prune(timedelta(days=days), archive=keep)
        return {"pruned": pruned, "archive": str(path)}

    # -- charging sessions: the charging-CDR list API ------------------------------------
    def json_response(value: Any) -> Response:  # Decimal amounts as exact strings
        return Response(dumps(value), media_type="application/json")

    @api.put("/sessions/{session_id}")
    def put_session(session_id: str, body: Annotated[dict[str, Any], Body()]) -> Response:
        session = ChargingSession.from_mapping(body)  # OCPI 2.2.1 or the list shape
        if session.id != session_id:
            raise ValidationError("id", session.id, f"the id in the path, {session_id!r}")
        return json_response(sessions.upsert(session).to_mapping())

    @api.get("/sessions")
    def list_sessions(params: Annotated[SessionListing, InQuery()]) -> Response:
        page = sessions.query(**params.query_arguments())
        return json_response({"items": page.to_records(), "next_page_cursor": page.next_cursor,
                              "previous_page_cursor": page.previous_cursor})  # fmt: skip

    app.include_router(api)
    return app
