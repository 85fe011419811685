"""The ASGI application: ``create_app(settings)``.

Endpoints: ``POST /predict``, ``GET /health/live``, ``GET /health/ready``, ``GET /version``,
``GET /openapi.json``, ``GET /metrics``. The model loads in a background thread at start-up, so the
process is live at once and ready only when the model is loaded and its sha256 verified. Error answers
are ``{"errors": [{"row", "field", "message"}]}`` and never contain the request body or a traceback.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import traceback
import uuid
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlci.serve import jsonio
from mlci.serve.experiment import CHALLENGER, CHAMPION, Experiment, IncompatibleChallenger, LogPlan, check_compatible
from mlci.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mlci.serve.metrics import ServerMetrics
from mlci.serve.model import ServedModel, load_served_model
from mlci.serve.openapi import openapi_document
from mlci.serve.payload import records_of
from mlci.serve.predlog import LoggedBatch, PredictionLog, utc_timestamp
from mlci.serve.settings import ServeSettings
from mlci.serve.validation import FieldError, RecordValidator

ENDPOINTS = ("/predict", "/health/live", "/health/ready", "/version", "/openapi.json", "/metrics")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Exception):
    pass


class ServerState:
    """The loaded model (or why it is not loaded), the validator, the log and the metrics."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.model: ServedModel | None = None
        self.validator: RecordValidator | None = None
        self.openapi: dict[str, Any] | None = None
        self.load_error: str | None = None
        self.log: PredictionLog | None = None
        self.experiment: Experiment | None = None

    def load(self) -> None:
        try:
            model = load_served_model(self.settings.registry, self.settings.model)
            experiment = self._load_experiment(model)
        except Exception as exc:  # integrity refusal, missing version, unreadable file: stay unready
            self.load_error = f"{type(exc).__name__}: {exc}"
            print(f"mlci.serve: model not loaded: {self.load_error}", file=sys.stderr, flush=True)
            return
        accept = self.settings.unknown_categories == "accept"
        self.validator = RecordValidator(model.schema, model.features, accept_unknown_categories=accept)
        self.openapi = openapi_document(model, max_rows=self.settings.max_rows, accept_unknown_categories=accept,
                                        max_body_bytes=self.settings.max_body_bytes)
        info = model.info()
        self.metrics.model_loaded(classifier=model.is_classifier,
                                  info={"version": str(model.version), "task": str(info["task"]),
                                        "data_sha256": str(info["data_sha256"] or ""),
                                        "git_commit": str(info["git_commit"] or "")})
        if experiment is not None:
            experiment.start()
            self.experiment = experiment
            print(f"mlci.serve: {experiment.mode} experiment {experiment.id}: challenger version "
                  f"{experiment.challenger.version} loaded and verified", file=sys.stderr, flush=True)
        self.model = model
        print(f"mlci.serve: model version {model.version} loaded and verified; {model.scoring_note}",
              file=sys.stderr, flush=True)

    def _load_experiment(self, champion: ServedModel) -> Experiment | None:
        """The challenger of a configured experiment, loaded and checked once: a server whose challenger
        cannot score the champion's rows never becomes ready, so the deployer keeps the old one."""
        settings = self.settings
        if not settings.experiment_mode:
            return None
        if not settings.experiment_challenger or not settings.experiment_id:
            raise IncompatibleChallenger("an experiment needs MLCI_SERVE_EXPERIMENT_CHALLENGER and _ID")
        registry = settings.experiment_registry or settings.registry
        challenger = load_served_model(registry, settings.experiment_challenger)
        check_compatible(champion, challenger)
        return Experiment(mode=settings.experiment_mode, experiment_id=settings.experiment_id,
                          challenger=challenger, share=settings.experiment_share, key=settings.experiment_key,
                          queue_rows=settings.experiment_queue_rows, cpu_share=settings.shadow_cpu_share,
                          metrics=self.metrics,
                          log=self._log_batch, challenger_registry=registry, champion_schema=champion.schema,
                          accept_unknown_categories=settings.unknown_categories == "accept",
                          log_plan=LogPlan(settings.log_dir, settings.log_max_bytes, settings.log_queue_rows))

    def _log_batch(self, batch: LoggedBatch) -> None:
        if self.log is not None:  # opened by the lifespan, which may start after the models load
            self.log.submit(batch)


def create_app(settings: ServeSettings, *, load_in_background: bool = True) -> MetricsMiddleware:
    """The app; with ``load_in_background=False`` the caller loads the model (``app.state.server.load()``)."""
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if settings.log_dir is not None:
            state.log = PredictionLog(settings.log_dir, max_bytes=settings.log_max_bytes,
                                      max_rows=settings.log_queue_rows,
                                      on_drop=lambda rows: state.metrics.log_dropped.inc(rows),
                                      on_error=lambda: state.metrics.log_errors.inc())
            state.log.start()
        if load_in_background:
            threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        try:
            yield
        finally:
            if state.experiment is not None:
                state.experiment.close()
            if state.log is not None:
                state.log.close()

    routes = [
        Route("/predict", _handler(state, predict), methods=["POST"]),
        Route("/health/live", _handler(state, live), methods=["GET"]),
        Route("/health/ready", _handler(state, ready), methods=["GET"]),
        Route("/version", _handler(state, version), methods=["GET"]),
        Route("/openapi.json", _handler(state, openapi), methods=["GET"]),
        Route("/metrics", _handler(state, metrics), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = state
    return MetricsMiddleware(app, state.metrics)


def _handler(state: ServerState, function):
    async def endpoint(request: Request) -> Response:
        return await function(state, request)
    return endpoint


class MetricsMiddleware:
    """Counts requests by endpoint and status and times them; a raw ASGI wrapper, cheaper than
    Starlette's BaseHTTPMiddleware. Unknown paths share one label so the label set stays bounded."""

    def __init__(self, app: Starlette, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            self.metrics.request_done(endpoint, status[0], time.perf_counter() - start)


# -- endpoints ----------------------------------------------------------------------------------


def _errors(status: int, message: str, request_id: str | None = None,
            errors: list[FieldError] | None = None) -> JSONResponse:
    items = [e.to_dict() for e in errors] if errors else [{"row": None, "field": None, "message": message}]
    body: dict[str, Any] = {"errors": items}
    if request_id:
        body["request_id"] = request_id
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(body, status_code=status, headers=headers)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonio.dumps(data), status_code=status, media_type="application/json", headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    params = params.strip().lower().replace(" ", "")
    return params in ("", "charset=utf-8")


async def predict(state: ServerState, request: Request) -> Response:
    header_id = request.headers.get("x-request-id", "")
    request_id = header_id if _REQUEST_ID.match(header_id) else uuid.uuid4().hex
    settings = state.settings
    if not _is_json(request.headers.get("content-type", "")):
        return _errors(415, "send the body as application/json (UTF-8)", request_id)
    try:
        body = await _read_body(request, settings.max_body_bytes)
    except BodyTooLarge:
        return _errors(413, f"the body is larger than {settings.max_body_bytes} bytes", request_id)
    model, validator = state.model, state.validator
    if model is None or validator is None:
        return _errors(503, "the model is not loaded yet", request_id)
    try:
        payload = jsonio.loads(body)
    except (ValueError, RecursionError):
        return _errors(400, "the body is not valid JSON", request_id)
    records = records_of(payload)
    if records is None:
        return _errors(422, 'expected {"records": [...]} or a JSON list of records', request_id)
    if not records:
        return _errors(422, "the batch is empty: send at least one record", request_id)
    if len(records) > settings.max_rows:
        return _errors(413, f"the batch has more than {settings.max_rows} records", request_id)
    columns, problems = validator.validate(records)
    if problems:
        state.metrics.invalid_rows.inc(len({p.row for p in problems}))
        return _errors(422, "", request_id, problems)
    experiment = state.experiment
    if experiment is not None:
        return _predict_in_experiment(state, experiment, model, request, request_id, records, columns, body)
    try:
        predictions, probabilities = model.predict(columns)
    except Exception:  # a model bug must not leak a traceback to the client; it goes to the server log
        print(f"mlci.serve: prediction failed (request {request_id}):\n{traceback.format_exc()}",
              file=sys.stderr, flush=True)
        return _errors(500, "the model failed to score this batch; see the server log", request_id)
    state.metrics.rows.observe(len(records))
    state.metrics.record_predictions(predictions)
    if state.log is not None:
        classes = [str(c) for c in model.classes] if model.classes is not None else None
        state.log.submit(LoggedBatch(utc_timestamp(), request_id, model.version, columns, predictions,
                                     probabilities, classes))
    return _answer(model, predictions, probabilities, request_id)


def _answer(model: ServedModel, predictions: list[Any], probabilities: list[list[float]] | None,
            request_id: str, role: str | None = None) -> Response:
    answer: dict[str, Any] = {"predictions": predictions}
    if probabilities is not None:
        answer["probabilities"] = probabilities
        answer["classes"] = model.classes
    answer["model_version"] = model.version
    answer["request_id"] = request_id
    headers = {"X-Request-ID": request_id, "X-Model-Version": str(model.version)}
    if role is not None:
        answer["model_role"] = role
        headers["X-Model-Role"] = role
    return _json(answer, headers=headers)


def _predict_in_experiment(state: ServerState, experiment: Experiment, champion: ServedModel, request: Request,
                           request_id: str, records: list[Any], columns: dict[str, list[Any]],
                           body: bytes) -> Response:
    """Answer with the arm the request falls in (canary) or the champion (shadow, whose challenger then
    scores the same rows off the response path: it is handed the body as received, which the champion
    accepted). Every row is logged with its model's role."""
    ts = utc_timestamp()
    role, model = CHAMPION, champion
    if experiment.answers_with_challenger(request.headers, records):
        role, model = CHALLENGER, experiment.challenger
    scored = experiment.score(role, model, ts, request_id, columns)
    if scored is None:
        return _errors(500, "the model failed to score this batch; see the server log", request_id)
    predictions, probabilities = scored
    state.metrics.rows.observe(len(records))
    state.metrics.record_predictions(predictions)
    if experiment.mode == "shadow":
        experiment.shadow(ts, request_id, body, len(records))
    return _answer(model, predictions, probabilities, request_id, role)


async def live(state: ServerState, request: Request) -> Response:
    if state.settings.deployment:
        return _json({"live": True, "deployment": state.settings.deployment})
    return _json({"live": True})


async def ready(state: ServerState, request: Request) -> Response:
    if state.model is not None:
        return _json({"ready": True, "model_version": state.model.version})
    reason = state.load_error or "loading the model"
    return _json({"ready": False, "reason": reason}, status=503)


async def version(state: ServerState, request: Request) -> Response:
    if state.model is None:
        return _errors(503, "the model is not loaded yet")
    experiment = state.experiment
    described = None if experiment is None else {
        "id": experiment.id, "mode": experiment.mode, "challenger_version": experiment.challenger.version,
        "share": experiment.share if experiment.mode == "canary" else None, "key": experiment.key or None}
    return _json({**state.model.info(), "deployment": state.settings.deployment or None,
                  "experiment": described})


async def openapi(state: ServerState, request: Request) -> Response:
    if state.openapi is None:
        return _errors(503, "the model is not loaded yet")
    return _json(state.openapi)


async def metrics(state: ServerState, request: Request) -> Response:
    return Response(state.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)
