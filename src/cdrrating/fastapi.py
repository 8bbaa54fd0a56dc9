"""cdrrating in a FastAPI service: exact JSON bodies and its errors as HTTP answers
(needs ``pip install 'cdrrating[fastapi]'``).

- :class:`ExactJSONRoute`: a route class that reads JSON request bodies with
  :func:`cdrrating.pydantic.loads`, so a JSON number reaches a model as a ``Decimal``
  and :data:`cdrrating.pydantic.Money` sees the digits the client sent (FastAPI's own
  ``json.loads`` would make it a float first). Use it as
  ``APIRouter(route_class=ExactJSONRoute)``.
- :func:`add_error_handlers`: the library's exceptions as HTTP statuses, each answer in
  FastAPI's own error shape (``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``)
  with the field named:

  ========================================  ======
  malformed JSON, a cursor not written here  400
  :class:`~cdrrating.NotFound`                404
  :class:`~cdrrating.Conflict`, and a
  :class:`~cdrrating.PlanError` (a deck that
  cannot make a plan)                         409
  any other :class:`~cdrrating.ValidationError`,
  and a request that fails its models         422
  :class:`~cdrrating.StorageError` (the
  database is unreachable or failing)         503
  ========================================  ======

  A 503 says only that storage failed; the driver's message, which may name hosts or
  tables, goes to the ``cdrrating.fastapi`` logger, not to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

try:
    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cdrrating.fastapi needs FastAPI, which is not installed: pip install 'cdrrating[fastapi]'"
    ) from _error

from cdrrating.errors import Conflict, NotFound, PlanError, StorageError, ValidationError
from cdrrating.pydantic import loads

__all__ = ["ExactJSONRequest", "ExactJSONRoute", "add_error_handlers", "error_response"]

_log = logging.getLogger("cdrrating.fastapi")

#: Fields whose bad value makes the request malformed (400) rather than unprocessable.
MALFORMED_FIELDS = frozenset({"cursor", "next_page_cursor", "previous_page_cursor", "json"})


class ExactJSONRequest(Request):
    """A request whose :meth:`json` keeps numbers exact (:func:`cdrrating.pydantic.loads`)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads(await self.body())
            except ValidationError as error:
                # FastAPI answers a JSONDecodeError with its own "json_invalid" error.
                raise json.JSONDecodeError(error.expected, str(error.value), 0) from None
        return self._json


class ExactJSONRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose JSON bodies are read by
    :class:`ExactJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact


def error_response(status: int, kind: str, message: str, field: str | None = None) -> JSONResponse:
    """An error in FastAPI's shape: ``{"detail": [{"loc", "msg", "type"}]}``."""
    detail = {"loc": [field] if field else [], "msg": message, "type": kind}
    return JSONResponse({"detail": [detail]}, status_code=status)


def _validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ValidationError)
    if isinstance(error, PlanError):
        return error_response(409, "plan_conflict", str(error), error.field)
    status = 400 if error.field in MALFORMED_FIELDS else 422
    return error_response(status, "value_error", str(error), error.field)


def _request_validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=status)


def _storage(_request: Request, error: Exception) -> JSONResponse:
    _log.error("storage failed: %s", error, exc_info=error)
    return error_response(503, "storage_unavailable", "the database failed; try again later")


def add_error_handlers(app: FastAPI) -> None:
    """Answer the library's exceptions with the statuses in this module's table."""
    app.add_exception_handler(NotFound, lambda _r, e: error_response(404, "not_found", str(e)))
    app.add_exception_handler(Conflict, lambda _r, e: error_response(409, "conflict", str(e)))
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StorageError, _storage)
