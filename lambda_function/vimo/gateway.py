"""A local stand-in for API Gateway's REST API, so `make run` serves what AWS would.

Each HTTP request becomes the ``aws_proxy`` event API Gateway builds when binary media types are
on, and the handler's answer goes back the way API Gateway sends it. The same limits apply, so
nothing that works here fails there: an event over Lambda's 6 MB invoke payload is refused with 413
before the function sees it. As on AWS, each invocation runs in a worker process that handles one
request at a time (Lambda never runs two invocations in one environment); requests run in parallel
across the workers.
"""

from __future__ import annotations

import base64
import concurrent.futures
import concurrent.futures.process
import fnmatch
import json
import logging
import multiprocessing
import os
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .config import LAMBDA_PAYLOAD_LIMIT

# The REST API's binary media types; swagger.yaml's x-amazon-apigateway-binary-media-types says the
# same (a test keeps them in step). "*/*" makes API Gateway return binary to clients that send
# curl's default "Accept: */*".
BINARY_MEDIA_TYPES = ("multipart/form-data", "video/*", "image/*", "application/octet-stream", "*/*")
# The function's timeout in template.yaml (API Gateway's 29 s integration limit); a test keeps the two
# in step, so that a clip that takes too long here takes too long there.
LAMBDA_TIMEOUT_MS = 29_000
# The routes swagger.yaml puts behind an API key; with an api_key set, the gateway checks it as API
# Gateway does (a test keeps this in step with swagger.yaml).
KEYED_ROUTES = {("POST", "/motion"), ("POST", "/uploads"), ("POST", "/jobs"), ("GET", "/jobs/{id}"),
                ("GET", "/jobs/{id}/montage.jpg")}
# The REST API's definition (in a checkout of the repository; not part of the Lambda package).
SPEC = Path(__file__).resolve().parents[2] / "swagger.yaml"
# Refuse bodies this large outright, before reading them: nothing near it can fit an invoke.
MAX_BODY = LAMBDA_PAYLOAD_LIMIT * 2

log = logging.getLogger("vimo.gateway")


def is_binary(media_type: str) -> bool:
    media_type = media_type.split(";", 1)[0].strip().lower()
    return bool(media_type) and any(fnmatch.fnmatch(media_type, pattern) for pattern in BINARY_MEDIA_TYPES)


def build_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str) -> dict:
    """The aws_proxy event API Gateway would send for this request."""
    url = urlsplit(target)
    single, multi = {}, {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query = parse_qs(url.query, keep_blank_values=True)
    binary = is_binary(_header(single, "content-type") or "")
    now = time.time()
    return {
        "resource": url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": url.path, "httpMethod": method, "path": url.path, "stage": "local",
            "requestId": str(uuid.uuid4()), "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), "protocol": "HTTP/1.1", "apiId": "local", "accountId": "000000000000",
            "identity": {"sourceIp": source_ip, "userAgent": _header(single, "user-agent")},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")) if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


def _header(headers: dict, name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    return next((value for key, value in headers.items() if key.lower() == name), None)


class LambdaContext:
    """The parts of Lambda's context object the handler and Powertools read."""

    def __init__(self, request_id: str, timeout_ms: int):
        self.function_name = "vimo-local"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:local:000000000000:function:vimo-local"
        self.memory_limit_in_mb = 2048
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/vimo-local"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def invoke(event: dict, timeout_ms: int = LAMBDA_TIMEOUT_MS) -> dict:
    """Runs in a worker process: one invocation, as Lambda would run it."""
    from .app import lambda_handler

    return lambda_handler(event, LambdaContext(event["requestContext"]["requestId"], timeout_ms))


def _warm() -> None:
    from . import app  # noqa: F401  (import the handler once per worker, as a Lambda cold start does)


def keyed(method: str, path: str) -> bool:
    """Whether a request needs the API key: its route, with {parameters}, is one of KEYED_ROUTES."""
    return any(method == keyed_method and re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(route)), path)
               for keyed_method, route in KEYED_ROUTES)


def _error(status: int, code: str, message: str) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"error": {"code": code, "message": message}}), "isBase64Encoded": False}


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog; socketserver's default of 5 resets bursts of new connections

    def __init__(self, address, workers: int | None = None, api_key: str | None = None):
        super().__init__(address, _Handler)
        self.workers = workers or os.cpu_count() or 2
        self.api_key = api_key
        self._pool_lock = threading.Lock()
        self.pool = None
        self._pool()
        # POST /jobs queues jobs in the store; they run here, in the background (see runners).
        from .config import Settings
        from .runners import LocalJobs

        self.jobs = LocalJobs(Settings.from_env())
        self.jobs.start()

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._pool_lock:
            if self.pool is None:
                self.pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
            return self.pool

    def server_close(self):
        super().server_close()
        self.jobs.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def call(self, event: dict) -> dict:
        if self.api_key and keyed(event["httpMethod"], event["path"]) \
                and _header(event.get("headers") or {}, "x-api-key") != self.api_key:
            # What API Gateway answers (through swagger.yaml's gateway responses) without a valid key.
            return _error(403, "INVALID_API_KEY", "Forbidden")
        size = len(json.dumps(event))
        if size > LAMBDA_PAYLOAD_LIMIT:
            return _error(413, "too_large",
                          f"The request is {size / 1e6:.1f} MB once API Gateway has base64-encoded it, over Lambda's "
                          "6 MB invoke limit (about 4.4 MB of upload). Upload the clip to S3 first (POST /uploads) "
                          "and send its key, or send a shorter clip.")
        pool = self._pool()
        try:
            result = pool.submit(invoke, event).result()
        except concurrent.futures.process.BrokenProcessPool:
            # A worker died (out of memory, a crash in a decoder): like Lambda, start fresh ones. Only
            # the first request to see this pool broken replaces it.
            with self._pool_lock:
                if self.pool is pool:
                    self.pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        if len(json.dumps(result)) > LAMBDA_PAYLOAD_LIMIT:
            return _error(502, "response_too_large", "The function's answer is over Lambda's 6 MB response limit.")
        return result


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    server_version = "vimo-local-gateway"

    def do_request(self):
        started = time.perf_counter()
        if self.command == "GET" and urlsplit(self.path).path == "/swagger.yaml" and SPEC.exists():
            # The API's definition, for clients and for testing the API against it (schemathesis).
            sent = self._send({"statusCode": 200, "headers": {"Content-Type": "application/yaml"},
                               "body": SPEC.read_text("utf-8")})
            log.info('%s "%s %s" 200 %sB', self.client_address[0], self.command, self.path, sent)
            return
        length = self.headers.get("Content-Length")
        try:
            size = int(length or 0)
        except ValueError:
            size = -1
        unreadable = self.headers.get("Transfer-Encoding", "").lower() == "chunked" or size < 0
        # A body left unread means what follows on this connection is not a request: close it.
        if unreadable:
            result = _error(400, "bad_request", "Send the body with a Content-Length.")
            self.close_connection = True
        elif size > MAX_BODY:
            result = _error(413, "too_large", f"The body is {size / 1e6:.1f} MB; Lambda accepts about 4.4 MB of upload.")
            self.close_connection = True
        else:
            body = self.rfile.read(size) if size else b""
            event = build_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            try:
                result = self.server.call(event)
            except Exception:  # the function crashed: API Gateway answers 502
                log.exception("invocation failed")
                result = _error(502, "bad_gateway", "The function failed while handling this request.")
        sent = self._send(result)
        log.info('%s "%s %s" %s %sB %.2fs', self.client_address[0], self.command, self.path,
                 result.get("statusCode"), sent, time.perf_counter() - started)

    def __getattr__(self, name: str):
        # Every method goes to the function, as API Gateway's proxy does; it answers 405 or 404.
        if name.startswith("do_"):
            return self.do_request
        raise AttributeError(name)

    def _send(self, result: dict) -> int:
        body = result.get("body") or ""
        accept = (self.headers.get("Accept") or "").split(",", 1)[0]
        if result.get("isBase64Encoded") and (not accept or is_binary(accept)):
            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(int(result.get("statusCode", 200)))
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, str(value))
            headers.pop(name, None)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return len(payload)

    def log_message(self, format, *args):  # one line per request is logged by do_request
        pass


def serve(host: str = "127.0.0.1", port: int = 3000, workers: int | None = None, api_key: str | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with Gateway((host, port), workers, api_key) as server:
        log.info("vimo local API on http://%s:%d (POST /motion), %d workers; Ctrl-C stops", host, port, server.workers)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
