"""The HTTP API: ``POST /v1/check``, ``GET /v1/health``, ``GET /v1/catalog/stats``.

Status codes (every error body is ``{"error": {"status", "code", "message"}}``):

- 200: the asset was checked. The body is exactly what ``scanner check`` prints
  (``AssetResult.to_dict()``), including verdict ``error`` for content that cannot be
  checked (not an image/audio file, truncated, empty, a decompression bomb over
  ``max_pixels``): like the CLI, the scanner judged the file, the answer is recorded in the
  audit trail, and ``error`` is never a pass. ``X-Audit-Id`` names the audit record.
- 400 malformed request (no ``file`` part, bad JSON, relative path, a directory, device,
  FIFO or socket); 401 no key, or an unknown/revoked one; 403 the key lacks the scope, or
  the path is outside the allowed roots (or server paths are off); 404 no such file under
  the roots; 408 the upload or JSON body took longer than the request timeout (or the
  request head longer than ``header_timeout_s``); 413 the upload is over
  the size limit; 415 neither multipart/form-data nor application/json; 422 an unknown
  ``stage`` or an over-long ``project``.
- 503 + ``Retry-After``: ``max_pending`` requests are already held, or the scanner cannot
  check right now (an index being rebuilt is unreadable); 504: no answer within the
  request timeout (the check may still complete and be audited); 500: a bug, logged.

Requests answered 4xx/5xx were not checked and leave no audit record.

``GET /v1/health`` answers anyone with bare liveness (``status``, ``ready``); models, index
checksums, queue, counters and ``last_error`` need a valid key of any scope.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanner import __version__
from scanner.api import Scanner
from scanner.catalog import Catalog
from scanner.config import Settings
from scanner.service.config import ServiceConfig
from scanner.service.engine import Engine, Job, ScannerFactory
from scanner.service.errors import ApiError, error_body
from scanner.service.intake import Intake, open_server_path, read_json, read_upload, resolve_roots
from scanner.types import Stage

log = logging.getLogger("scanner.service")
ANONYMOUS = "service:anonymous"
MAX_PROJECT = 200


# ----- documentation models (responses are built as plain JSON; these feed /openapi.json) -----
class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class CheckResult(BaseModel):
    """Same record as `scanner check` prints and the JSONL report holds."""

    model_config = ConfigDict(extra="allow")
    path: str = Field(description="The uploaded file's name, or the resolved server path.")
    sha256: Optional[str]
    media_type: Optional[str]
    verdict: str = Field(description="block, review, pass, or error (could not be checked: never a pass).")
    findings: list[dict[str, Any]]
    error: Optional[str]
    models: dict[str, str]
    stage: str
    calibration: str
    indexes: dict[str, str]
    notes: list[str]


class Health(BaseModel):
    """Without a key only ``status`` and ``ready``; the rest needs a valid key."""

    model_config = ConfigDict(extra="allow")
    status: str
    ready: bool
    version: Optional[str] = None
    models: Optional[dict[str, dict[str, str]]] = None
    indexes: Optional[dict[str, Any]] = None


CHECK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The asset (image, audio, video)."},
                    "stage": {"type": "string", "enum": [s.value for s in Stage]},
                    "project": {"type": "string", "description": "Project for talent consent."},
                },
            }},
            "application/json": {"schema": {
                "type": "object", "required": ["path"],
                "properties": {
                    "path": {"type": "string", "description": "Absolute path of a file under one of the server's "
                                                              "--allow-root folders."},
                    "stage": {"type": "string", "enum": [s.value for s in Stage]},
                    "project": {"type": "string"},
                },
            }},
        },
    },
}
ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "Malformed request, or the path is not a regular file",
    401: "Missing, unknown or revoked API key",
    403: "Key lacks the scope, or path outside the allowed roots",
    404: "No such file under the allowed roots",
    408: "Upload, JSON body or request head too slow",
    413: "Upload over the size limit",
    415: "Unsupported content type",
    422: "Invalid stage or project",
    503: "Busy (see Retry-After) or not ready",
    504: "No answer within the request timeout",
}.items()}


def create_app(settings: Settings, config: ServiceConfig | None = None,
               scanner_factory: ScannerFactory = Scanner, engine: Engine | None = None) -> FastAPI:
    """The service app. Models and indexes load when it starts (or earlier, if ``engine`` was
    started by the caller, as ``scanner serve`` does to report start-up errors cleanly)."""
    config = config or ServiceConfig()
    roots = resolve_roots(config.allow_roots)
    engine = engine or Engine(settings, config, scanner_factory)
    side = Catalog(settings.catalog)  # the request threads' own connection: keys and statistics
    side_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(engine.start)
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)
            side.close()

    app = FastAPI(
        title="scanner", version=__version__, lifespan=lifespan,
        description="Similarity scanner for copyright and likeness risk: check one asset at a time. "
                    "Send an API key as `Authorization: Bearer sk_…` (or `X-API-Key`). Every answer is "
                    "recorded in the catalog's hash-chained audit trail.",
    )
    app.state.engine = engine
    app.state.config = config

    bearer = HTTPBearer(auto_error=False, description="An API key from `scanner keys create`.")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as a header.")

    def require(scope: str | None):
        """Dependency: the caller of a valid key with ``scope`` (None: any scope)."""
        async def caller(cred: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                         key_header: Optional[str] = Depends(header_key)) -> str:
            if not config.require_auth:
                return ANONYMOUS
            token = cred.credentials if cred is not None else key_header
            if not token:
                raise ApiError(401, "unauthorized", "an API key is required: send 'Authorization: Bearer <key>'",
                               {"WWW-Authenticate": "Bearer"})
            with side_lock:
                key = side.verify_key(token)
            if key is None:
                raise ApiError(401, "invalid_key", "the API key is unknown, malformed or revoked",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if scope is not None and scope not in key.scopes:
                raise ApiError(403, "insufficient_scope", f"this key does not have the '{scope}' scope",
                               {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
            return key.caller

        return caller

    # ----- errors as JSON -------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(error_body(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)),
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(422, "invalid_request", str(exc.errors())[:500]), 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal_error", "internal error; see the server log"), 500)

    # ----- routes ----------------------------------------------------------------------
    @app.post("/v1/check", response_model=CheckResult, responses=ERRORS, openapi_extra=CHECK_BODY,
              summary="Check one asset", tags=["check"])
    async def check(request: Request, caller: str = Depends(require("check"))) -> JSONResponse:
        """Upload the asset as multipart field `file`, or (when the server has allowed roots) send
        `{"path": "/abs/path"}`. Optional `stage` and `project` as form fields or JSON members."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.request_timeout_s
        engine.admit()
        try:
            return await _check(request, caller, deadline)
        finally:
            engine.leave()

    async def _body(reading: Any, deadline: float, what: str) -> dict[str, Any]:
        """Every request body (upload or JSON) has the same deadline: a stalled body holds an
        admission slot, so it must end in a 408, not wait for the client."""
        try:
            return await asyncio.wait_for(reading, deadline - asyncio.get_running_loop().time())
        except asyncio.TimeoutError:
            # the rest of the body may still come: close rather than read it as the next request
            raise ApiError(408, "upload_timeout", f"the {what} did not finish within "
                                                  f"{config.request_timeout_s:g} s", {"Connection": "close"}) from None

    async def _check(request: Request, caller: str, deadline: float) -> JSONResponse:
        loop = asyncio.get_running_loop()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        intake: Intake | None = None
        job: Job | None = None
        try:
            if ctype == "multipart/form-data":
                assert engine.upload_dir is not None
                intake = Intake.upload(engine.upload_dir)
                fields: dict[str, Any] = await _body(read_upload(request, intake, config), deadline, "upload")
            elif ctype == "application/json":
                fields = await _body(read_json(request, config), deadline, "JSON body")
                intake = open_server_path(fields.get("path"), roots)
            else:
                raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a 'file' field, or "
                                                              "application/json with a 'path'")
            stage, project = _stage_project(fields, settings)
            job = Job(intake, caller, stage, project)
            intake = None  # the job owns it now
            engine.submit(job)
            waiter = asyncio.wrap_future(job.future)
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                engine.note_timeout()
                raise ApiError(504, "timeout", f"no answer within {config.request_timeout_s:g} s; "
                                               "the server is overloaded or the file is very large")
            outcome = waiter.result()
            if outcome.error is not None:
                raise outcome.error
            headers = {"X-Request-Id": job.request_id}
            if outcome.audit_id is not None:
                headers["X-Audit-Id"] = str(outcome.audit_id)
            return JSONResponse(outcome.result, 200, headers=headers)
        finally:
            if job is not None:
                job.release()
            if intake is not None:
                intake.close()

    require_any = require(None)

    async def optional_caller(cred: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                              key_header: Optional[str] = Depends(header_key)) -> Optional[str]:
        """The caller when a key is sent (any scope; 401 for a bad one), None without one."""
        if not config.require_auth:
            return ANONYMOUS
        if (cred.credentials if cred is not None else key_header) is None:
            return None
        return await require_any(cred, key_header)

    @app.get("/v1/health", response_model=Health, summary="Liveness and readiness", tags=["service"],
             responses={503: {"model": Health, "description": "Not ready"}, 401: ERRORS[401]})
    async def health(caller: Optional[str] = Depends(optional_caller)) -> JSONResponse:
        """No key needed for liveness: ``status`` and ``ready`` (200 when ready to check, 503
        otherwise). With a valid key (any scope) also models, index versions, queue and counters:
        what runs and what failed is not for anonymous callers."""
        ready = engine.ready
        body: dict[str, Any] = {
            "status": "ok" if ready else ("starting" if engine.scanner is None and engine.startup_error is None
                                          else "degraded"),
            "ready": ready,
        }
        if caller is not None:
            guard = getattr(app.state, "header_guard", None)
            body.update({
                "version": __version__,
                "uptime_s": round(time.time() - engine.started_at, 1),
                "auth": config.require_auth,
                "models": engine.models,
                "indexes": await asyncio.to_thread(engine.index_status),
                "queue": {"pending": engine.pending, "waiting": engine.queued, "max_pending": config.max_pending,
                          "max_batch": config.max_batch},
                "counters": dict(engine.counters),
                "connections": None if guard is None else {"sending_head": guard.waiting, "idle": guard.idle,
                                                            **guard.counters},
                "last_error": engine.last_error,
            })
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/v1/catalog/stats", summary="Catalog statistics", tags=["catalog"],
             responses={k: v for k, v in ERRORS.items() if k in (401, 403)})
    def stats(caller: str = Depends(require("admin"))) -> dict[str, Any]:
        """Counts of works, talent and consent records, and the size of each index (needs `admin`)."""
        with side_lock:
            works = side.works()
            talents = side.talents()
            samples = side.samples()
            consents = side.consents()
        by_type: dict[str, int] = {}
        by_clearance: dict[str, int] = {}
        for w in works:
            by_type[w.media_type] = by_type.get(w.media_type, 0) + 1
            by_clearance[w.clearance.value] = by_clearance.get(w.clearance.value, 0) + 1
        return {
            "works": {"total": len(works), "by_media_type": by_type, "by_clearance": by_clearance},
            "talent": {"total": len(talents), "union_covered": sum(t.union_covered for t in talents),
                       "face_samples": sum(s.kind == "face" for s in samples),
                       "voice_samples": sum(s.kind == "voice" for s in samples),
                       "consent_records": len(consents)},
            "indexes": {name: info["on_disk"] for name, info in engine.index_status().items()},
        }

    return app


def _stage_project(fields: dict[str, Any], settings: Settings) -> tuple[Stage, str]:
    raw_stage = fields.get("stage")
    if raw_stage in (None, ""):
        stage = settings.stage
    else:
        try:
            stage = Stage(str(raw_stage).strip().lower())
        except ValueError:
            raise ApiError(422, "invalid_stage", f"unknown stage {str(raw_stage)[:40]!r}; use "
                                                 + " or ".join(s.value for s in Stage)) from None
    project = fields.get("project")
    if project in (None, ""):
        project = settings.project
    if not isinstance(project, str) or len(project) > MAX_PROJECT:
        raise ApiError(422, "invalid_project", f"'project' must be text of at most {MAX_PROJECT} characters")
    return stage, project
