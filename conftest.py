"""Fake API Gateway events, built the way API Gateway builds them, for every request form.

Bodies are made with requests-toolbelt's MultipartEncoder (as the original project's tests did) and
base64-encoded with ``isBase64Encoded`` set, as a REST API with binary media types delivers them.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from requests_toolbelt.multipart.encoder import MultipartEncoder

TEST_DATA = Path(__file__).parent / "test_data"


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    """Jobs of every test go to a directory of this session, never to ~/.local/share/vimo."""
    import os

    path = tmp_path_factory.mktemp("vimo-data")
    os.environ["DATA_DIR"] = str(path)
    return path


class FakeContext:
    function_name = "vimo-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:vimo-test"
    memory_limit_in_mb = 2048
    aws_request_id = "test-request"
    log_group_name = "/aws/lambda/vimo-test"
    log_stream_name = "test"

    def __init__(self, remaining_ms: int = 900_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def gateway_event(body: bytes | str | None = None, content_type: str | None = None, method: str = "POST",
                  path: str = "/motion", headers: dict | None = None, query: dict | None = None,
                  base64_encoded: bool = True) -> dict:
    """An aws_proxy event as API Gateway (REST, binary media types on) sends it."""
    headers = dict(headers or {})
    if content_type is not None:
        headers.setdefault("Content-Type", content_type)
    if isinstance(body, str):
        body = body.encode()
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": query, "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": method, "path": f"/prod{path}", "stage": "prod",
                           "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "203.0.113.9"}},
        "body": None if body is None else (base64.b64encode(body).decode() if base64_encoded else body.decode()),
        "isBase64Encoded": body is not None and base64_encoded,
    }


def multipart_event(fields: list[tuple], headers: dict | None = None, query: dict | None = None) -> dict:
    """``fields`` as MultipartEncoder takes them: (name, value) or (name, (filename, bytes, type))."""
    encoder = MultipartEncoder(fields=fields)
    return gateway_event(encoder.to_string(), encoder.content_type, headers=headers, query=query)


def invoke(event: dict, context: FakeContext | None = None) -> dict:
    from vimo.app import lambda_handler

    return lambda_handler(event, context or FakeContext())


def body_bytes(response: dict) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def body_json(response: dict) -> dict:
    return json.loads(body_bytes(response))


def header(response: dict, name: str) -> str | None:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for k, v in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), v[0] if v else None)
    return headers.get(name.lower())


@contextmanager
def serving(server):
    """A local server (a ``gateway.Gateway``, an HTTP or WSGI server on a free loopback port) run in
    a thread; its base URL, without a trailing slash. Shut down and closed on the way out, whatever
    happened."""
    thread = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def serving_files(folder: Path):
    """The files of ``folder`` over plain HTTP, without a log line per request; the base URL."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))) as url:
        yield url


def write_square_clip(path: Path, seconds: float = 6.0, moving=((2.0, 4.0),), codec: str = "libx264",
                      size=(320, 240), rate: int = 25, gop: int | None = None, grain: float = 0.0,
                      options: dict | None = None) -> Path:
    """A textured still scene that a dark square crosses, left to right, during each ``(start, end)``
    of ``moving`` (seconds); ``gop``: frames between keyframes (the encoder's default if None);
    ``grain``: the standard deviation of sensor noise new in every frame; ``options``: the encoder's."""
    import av
    import numpy as np

    width, height = size
    rng = np.random.default_rng(1)
    background = (rng.random((height, width, 3)) * 60 + 100).astype(np.uint8)
    square = max(8, width * 3 // 16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options={**({"g": str(gop)} if gop else {}), **(options or {})})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(int(seconds * rate)):
            frame = background.copy()
            t = i / rate
            for start, end in moving:
                if start <= t < end:
                    x = int((t - start) / (end - start) * (width - square))
                    frame[height // 3:height // 3 + height // 3, x:x + square] = 20
            if grain:
                frame = np.clip(frame + rng.normal(0, grain, (height, width, 1)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def square_clip(tmp_path_factory) -> Path:
    """6 s, 320x240 H.264: a dark square crosses from 2 s to 4 s."""
    return write_square_clip(tmp_path_factory.mktemp("clips") / "square.mp4")


@pytest.fixture(scope="session")
def square_frames(square_clip) -> list[bytes]:
    """Six JPEG stills, one a second, from the square clip: the square is in frames 3 and 4."""
    import io

    import av

    stills = []
    with av.open(str(square_clip)) as container:
        for frame in container.decode(video=0):
            if frame.pts is not None and abs(float(frame.time) - round(float(frame.time))) < 0.02:
                buffer = io.BytesIO()
                frame.to_image().save(buffer, "JPEG", quality=90)
                stills.append(buffer.getvalue())
    return stills
