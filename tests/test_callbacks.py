"""Callbacks: a finished job's JSON POSTed to a receiver on 127.0.0.1, signed, retried, and
never sent where a server must not send."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import body_json, invoke, multipart_event, serving
from vimo import gateway
from vimo.callbacks import deliver
from vimo.config import Settings

SECRET = "test-webhook-secret"


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next status of ``statuses`` (the last one from then on) and
    keeps what it was sent."""

    def __init__(self, statuses=(200,), location: str | None = None):
        super().__init__(("127.0.0.1", 0), _Receive)
        self.statuses = list(statuses)
        self.location = location
        self.received: list[tuple[dict, bytes]] = []
        self.arrived = threading.Event()


class _Receive(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = self.server.statuses.pop(0) if len(self.server.statuses) > 1 else self.server.statuses[0]
        self.send_response(status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, *args):
        pass


def verified(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    """What a receiver does (the README's example): recompute the HMAC, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-vimo-signature", ""))


@pytest.fixture
def webhooks(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("VIMO_ALLOW_LOOPBACK_URLS", "1")
    monkeypatch.setenv("CALLBACK_BACKOFF", "0.05")
    monkeypatch.setenv("CALLBACK_ATTEMPTS", "4")


def test_a_finished_job_calls_back_with_a_valid_signature(webhooks, square_clip):
    receiver = Receiver()
    with serving(receiver) as hook, serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
        with square_clip.open("rb") as clip:
            answer = requests.post(f"{api}/jobs", files={"clip": ("door.mp4", clip, "video/mp4")},
                                   data={"callback_url": f"{hook}/vimo?camera=door"}, timeout=10)
        assert answer.status_code == 202, answer.text
        assert receiver.arrived.wait(60), "no callback arrived"
        [(headers, body)] = receiver.received
        assert verified(headers, body)
        assert not verified(headers, body, "another secret") and not verified(headers, body + b" ")
        assert headers["content-type"] == "application/json"
        sent = json.loads(body)
        assert sent["id"] == answer.json()["id"] and sent["status"] == "done" and sent["progress"] == 1
        [event] = sent["result"]["events"]
        assert 1.5 <= event["start"] <= 2.5
        assert requests.get(sent["result"]["montage_url"], timeout=10).content[:3] == b"\xff\xd8\xff"
        deadline = time.monotonic() + 10
        while "callback" not in (job := requests.get(answer.json()["url"], timeout=10).json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # What was sent is what GET /jobs/{id} shows, plus how the delivery went.
    assert job["callback"] == {"url": f"{hook}/vimo?camera=door", "delivered": True, "attempts": 1, "status": 200}
    assert {k: v for k, v in job.items() if k != "callback"} == {**sent, "updated_at": job["updated_at"]}


def test_a_receiver_that_fails_twice_gets_the_third_try(webhooks):
    receiver = Receiver(statuses=(500, 503, 204))
    with serving(receiver) as hook:
        outcome = deliver(f"{hook}/hook", {"id": "x", "status": "done"}, Settings.from_env())
    assert outcome == {"url": f"{hook}/hook", "delivered": True, "attempts": 3, "status": 204}
    assert len(receiver.received) == 3
    assert len({body for _, body in receiver.received}) == 1  # the same signed body each time
    assert all(verified(headers, body) for headers, body in receiver.received)


def test_a_receiver_that_always_fails_is_given_up_on(webhooks):
    receiver = Receiver(statuses=(503,))
    with serving(receiver) as hook:
        outcome = deliver(f"{hook}/hook", {"id": "x"}, Settings.from_env())
    assert outcome["delivered"] is False and outcome["attempts"] == 4 and outcome["status"] == 503
    assert len(receiver.received) == 4
    # A refusal that a retry cannot change (400) is not retried.
    refusing = Receiver(statuses=(400,))
    with serving(refusing) as hook:
        outcome = deliver(f"{hook}/hook", {"id": "x"}, Settings.from_env())
    assert outcome["attempts"] == 1 and len(refusing.received) == 1 and outcome["delivered"] is False


def test_an_unreachable_receiver_is_tried_then_given_up_on(webhooks):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _Receive)
    port = closed.server_address[1]
    closed.server_close()
    outcome = deliver(f"http://127.0.0.1:{port}/hook", {"id": "x"}, Settings.from_env())
    assert outcome["delivered"] is False and outcome["attempts"] == 4 and "error" in outcome


def test_redirects_are_not_followed(webhooks):
    receiver = Receiver(statuses=(307,), location="http://169.254.169.254/latest/meta-data/")
    with serving(receiver) as hook:
        outcome = deliver(f"{hook}/hook", {"id": "x"}, Settings.from_env())
    assert outcome["delivered"] is False and outcome["status"] == 307 and len(receiver.received) == 1


def test_loopback_is_refused_unless_allowed(webhooks, monkeypatch):
    monkeypatch.delenv("VIMO_ALLOW_LOOPBACK_URLS")
    receiver = Receiver()
    with serving(receiver) as hook:
        outcome = deliver(hook.replace("127.0.0.1", "localhost") + "/hook", {"id": "x"}, Settings.from_env())
    assert outcome["delivered"] is False and outcome["attempts"] == 0 and "loopback" in outcome["error"]
    assert receiver.received == []


@pytest.mark.parametrize("url, status, code", [
    ("http://169.254.169.254/latest/meta-data/", 400, "forbidden_url"),
    ("http://10.0.0.7/hook", 400, "forbidden_url"),
    ("http://[::ffff:192.168.1.1]/hook", 400, "forbidden_url"),
    ("ftp://example.org/hook", 400, "bad_url"),
    ("https://user:pw@example.org/hook", 400, "bad_url"),
])
def test_bad_callback_urls_are_refused_at_once(webhooks, square_clip, url, status, code):
    answer = invoke(multipart_event([("clip", ("door.mp4", square_clip.read_bytes(), "video/mp4")),
                                     ("callback_url", url)]) | {"path": "/jobs"})
    assert answer["statusCode"] == status and body_json(answer)["error"]["code"] == code, answer["body"]


def test_a_callback_needs_a_secret_to_sign_with(square_clip, monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    answer = invoke(multipart_event([("clip", ("door.mp4", square_clip.read_bytes(), "video/mp4"))],
                                    query={"callback_url": "https://example.org/hook"}) | {"path": "/jobs"})
    assert answer["statusCode"] == 501 and body_json(answer)["error"]["code"] == "no_webhook_secret"
