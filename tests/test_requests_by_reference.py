"""Clips sent by reference through the handler: POST /uploads, then {"s3_key"}; or {"movie_url"}."""

import json

import pytest
import requests

from conftest import body_bytes, body_json, gateway_event, header, invoke, serving_files
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)


def json_event(document: dict, **kwargs) -> dict:
    return gateway_event(json.dumps(document), "application/json", **kwargs)


def test_upload_to_s3_then_analyse_by_key(s3_bucket, square_clip):
    answer = invoke(gateway_event(None, method="POST", path="/uploads"))
    assert answer["statusCode"] == 201
    presigned = body_json(answer)
    files = {presigned["file_field"]: ("door.mp4", square_clip.read_bytes(), "video/mp4")}
    stored = requests.post(presigned["url"], data=presigned["fields"], files=files, timeout=30)
    assert stored.status_code in (200, 204), stored.text

    response = invoke(json_event({"s3_key": presigned["key"], "format": "json"}))
    assert response["statusCode"] == 200, response["body"]
    [event] = body_json(response)["events"]
    assert 1.5 <= event["start"] <= 2.5 and 3.5 <= event["end"] <= 4.6

    jpeg = invoke(json_event({"s3_key": presigned["key"]}))
    assert header(jpeg, "Content-Type") == "image/jpeg" and body_bytes(jpeg)[:2] == b"\xff\xd8"


def test_unknown_or_foreign_key_is_refused(s3_bucket):
    missing = invoke(json_event({"s3_key": "uploads/2026/01/01/" + "0" * 32}))
    assert missing["statusCode"] == 404 and body_json(missing)["error"]["code"] == "no_such_upload"
    foreign = invoke(json_event({"s3_key": "montages/2026/01/01/secret.jpg"}))
    assert foreign["statusCode"] == 400 and body_json(foreign)["error"]["code"] == "bad_s3_key"


@pytest.mark.parametrize("document, code", [
    ({}, "missing_source"),
    ({"s3_key": "uploads/x", "movie_url": "https://example.org/a.mp4"}, "missing_source"),
    ({"movie_url": 7}, "missing_source"),
    ({"movie_url": "ftp://example.org/a.mp4"}, "bad_url"),
    ({"movie_url": "https://example.org/a.mp4", "stepp": 1}, "unknown_option"),
])
def test_bad_json_requests(document, code):
    response = invoke(json_event(document))
    assert 400 <= response["statusCode"] < 500 and body_json(response)["error"]["code"] == code


def test_body_that_is_not_json():
    response = invoke(gateway_event(b"{not json", "application/json"))
    assert response["statusCode"] == 400 and body_json(response)["error"]["code"] == "bad_json"


@pytest.fixture
def clip_server(square_clip):
    with serving_files(square_clip.parent) as url:
        yield f"{url}/{square_clip.name}"


def test_movie_url_is_fetched_and_analysed(clip_server, monkeypatch):
    monkeypatch.setenv("VIMO_ALLOW_LOOPBACK_URLS", "1")
    response = invoke(json_event({"movie_url": clip_server, "format": "json", "step": 0.25}))
    assert response["statusCode"] == 200, response["body"]
    payload = body_json(response)
    assert len(payload["events"]) == 1 and payload["video"]["frames_analyzed"] >= 20


def test_movie_url_to_loopback_is_refused_by_default(clip_server, monkeypatch):
    monkeypatch.delenv("VIMO_ALLOW_LOOPBACK_URLS", raising=False)
    response = invoke(json_event({"movie_url": clip_server}))
    assert response["statusCode"] == 400 and body_json(response)["error"]["code"] == "forbidden_url"
