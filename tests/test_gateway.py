"""The local gateway over real HTTP: the event it builds, the limits it enforces, concurrency."""

import base64
import concurrent.futures
import json

import pytest
import requests

from conftest import serving
from vimo import gateway


@pytest.fixture(scope="module")
def api():
    with serving(gateway.Gateway(("127.0.0.1", 0), workers=2)) as url:
        yield url


def test_event_is_what_api_gateway_sends():
    body = b"--b\r\nContent-Disposition: form-data; name=clip\r\n\r\nxyz\r\n--b--\r\n"
    event = gateway.build_event("POST", "/motion?format=json&step=1", [("Content-Type", "multipart/form-data; boundary=b"),
                                                                       ("X-Tag", "a"), ("X-Tag", "b")], body, "127.0.0.1")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == body
    assert event["httpMethod"] == "POST" and event["path"] == "/motion"
    assert event["queryStringParameters"] == {"format": "json", "step": "1"}
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"] and event["headers"]["X-Tag"] == "b"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["requestId"]


def test_media_types_with_parameters_are_binary():
    assert gateway.is_binary("video/mp4") and gateway.is_binary("multipart/form-data; boundary=x")


def test_clip_over_http(api, square_clip):
    with square_clip.open("rb") as clip:
        response = requests.post(f"{api}/motion", files={"clip": ("door.mp4", clip, "video/mp4")}, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["X-Motion-Events"] == "1"
    assert response.content[:3] == b"\xff\xd8\xff"


def test_raw_body_over_http(api, square_clip):
    response = requests.post(f"{api}/motion?format=json", data=square_clip.read_bytes(),
                             headers={"Content-Type": "video/mp4"}, timeout=60)
    assert response.status_code == 200
    assert len(response.json()["events"]) == 1


def test_concurrent_requests(api, square_clip):
    data = square_clip.read_bytes()

    def post(_):
        return requests.post(f"{api}/motion", files={"clip": ("a.mp4", data, "video/mp4")},
                             data={"format": "json"}, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len({json.dumps(r.json()["events"]) for r in responses}) == 1


def test_event_over_lambda_limit_is_413(api):
    big = b"\0" * 4_800_000  # 6.4 MB once base64-encoded
    response = requests.post(f"{api}/motion", files={"clip": ("big.mp4", big, "video/mp4")}, timeout=60)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "/uploads" in error["message"]


def test_unknown_path_and_method(api):
    missing = requests.get(f"{api}/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = requests.get(f"{api}/motion", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"


def test_cors_preflight(api):
    response = requests.options(f"{api}/motion", headers={"Origin": "https://example.org",
                                                         "Access-Control-Request-Method": "POST"}, timeout=10)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_page(api):
    response = requests.get(f"{api}/", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
