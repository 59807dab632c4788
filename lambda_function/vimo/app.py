"""The Lambda handler: routes, the event/response boundary, and nothing else.

``lambda_handler`` is what AWS Lambda calls (``vimo.app.lambda_handler``) and what the local gateway
calls too, so a request behaves the same on a laptop and on AWS. Powertools does the routing, CORS
preflights and base64 of binary answers; every refusal is an ``ApiError`` turned into JSON here.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from . import jobs, runners
from .config import Settings
from .delivery import error_response, json_response, respond
from .errors import ApiError
from .runners import SEGMENT_KEY, analyze_upload, lambda_deadline, run_segment
from .sources import presign_upload
from .upload import parse_event

logger = Logger(service="vimo")
cors = CORSConfig(allow_origin="*", allow_headers=["Content-Type", "X-Api-Key", "Accept"],
                  expose_headers=["X-Motion-Events"], max_age=600)
app = APIGatewayRestResolver(cors=cors)
ROUTES = {"/": {"GET"}, "/motion": {"POST"}, "/uploads": {"POST"}, "/jobs": {"POST"}, "/jobs/{id}": {"GET"},
          "/jobs/{id}/montage.jpg": {"GET"}}
PAGE = Path(__file__).with_name("static") / "index.html"


@app.get("/")
def page() -> Response:
    """The upload page for people; plain HTML, served by the function itself so it works anywhere the API does."""
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=PAGE.read_text("utf-8"))


@app.post("/motion")
def motion() -> Response:
    settings = Settings.from_env()
    upload = parse_event(app.current_event.raw_event, settings)
    with tempfile.TemporaryDirectory(prefix="vimo-") as workdir:
        result = analyze_upload(upload, Path(workdir), settings, deadline=_deadline(), context=app.lambda_context)
    logger.info("analysed", extra={"media": result.video.to_dict(), "events": len(result.events),
                                   "elapsed_ms": result.elapsed_ms})
    return respond(result, upload.name, upload.options, settings)


@app.post("/uploads")
def uploads() -> Response:
    """A presigned S3 upload for a clip too big to send through API Gateway; then POST /motion
    with {"s3_key": key}."""
    return json_response(201, presign_upload(Settings.from_env()))


@app.post("/jobs")
def create_job() -> Response:
    """The same media and options as POST /motion, analysed in the background: 202 at once with
    the job's id and URL (also in Location); GET that URL for its status and, when done, its result."""
    settings = Settings.from_env()
    upload = parse_event(app.current_event.raw_event, settings, extras=("callback_url",))
    base = _base_url()
    job = jobs.submit(upload, settings, base)
    runners.start(job, settings)
    url = f"{base}/jobs/{job.id}"
    logger.info("job queued", extra={"job": job.id})
    return json_response(202, {"id": job.id, "status": job.status, "url": url}, {"Location": url})


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    settings = Settings.from_env()
    return json_response(200, jobs.view(jobs.load(job_id, settings), settings, _base_url()))


@app.get("/jobs/<job_id>/montage.jpg")
def job_montage(job_id: str) -> Response:
    """A finished job's montage, for stores without URLs of their own (files, on the local server);
    from S3, a redirect to a presigned URL."""
    settings = Settings.from_env()
    where = jobs.store(settings)
    job = jobs.load(job_id, settings, where)
    if job.status != "done":
        raise ApiError(409, "no_montage", f"Job {job.id} is {job.status}: only a done job has a montage.")
    url = where.url(jobs.montage_key(job))
    if url:
        return Response(status_code=303, content_type="application/json", body="{}", headers={"Location": url})
    montage = where.get(jobs.montage_key(job))
    if montage is None:
        raise ApiError(404, "no_montage", f"The montage of job {job.id} has expired.")
    return Response(status_code=200, content_type="image/jpeg", body=montage)


def _base_url() -> str:
    """How the caller reached the API (scheme, host and stage), for the URLs handed back."""
    event = app.current_event
    host = event.headers.get("Host") or "localhost"  # Powertools' headers ignore case
    scheme = event.headers.get("X-Forwarded-Proto") or "http"
    context = event.raw_event.get("requestContext") or {}
    full, path = context.get("path") or "", event.path
    prefix = full[:-len(path)] if path and full.endswith(path) else ""  # "/prod" on API Gateway's own host
    return f"{scheme}://{host}{prefix}"


def _deadline() -> float | None:
    """When analysis must stop, when running on Lambda (see ``runners.lambda_deadline``)."""
    context = app.lambda_context
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return lambda_deadline(context)


@app.exception_handler(ApiError)
def refuse(error: ApiError) -> Response:
    logger.info("refused", extra={"status": error.status, "code": error.code})
    return error_response(error)


@app.exception_handler(Exception)
def crash(error: Exception) -> Response:
    """A bug, not bad input: logged with its traceback, answered as JSON rather than a bare 502."""
    logger.exception("unhandled error")
    return error_response(ApiError(500, "internal_error", "The server failed to process this request; it has been "
                                                          "logged."))


@app.not_found
def not_found(_: NotFoundError) -> Response:
    path = app.current_event.path
    method = app.current_event.http_method
    template = next((t for t in ROUTES if re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(t)), path)), None)
    if template:
        allowed = ", ".join(sorted(ROUTES[template]))
        return error_response(ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}; use {allowed}."),
                              {"Allow": allowed})
    return error_response(ApiError(404, "not_found", f"No such resource: {path}."))


@logger.inject_lambda_context
def lambda_handler(event: dict, context) -> dict:
    if SEGMENT_KEY in event:  # this function, invoked by itself for one segment of a long clip
        return run_segment(event, context)
    from . import cameras

    if runners.STEP_KEY in event:  # a step of the jobs state machine (Step Functions)
        return runners.run_step(event, context)
    if cameras.is_s3_event(event):  # clips created under incoming/ in the bucket: one job each
        return cameras.handle(event)
    return app.resolve(event, context)
