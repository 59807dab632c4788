"""S3 delivery against moto's S3 server over real HTTP (see s3server.py), reached through AWS_ENDPOINT_URL.

moto checks neither presigned signatures nor expiry, so the URL's SigV4 parameters are checked here
in code, and the signature is recomputed from the fake secret key by an independent implementation.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac
import re
import threading
import time
import urllib.request
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests

from conftest import body_bytes, body_json, header, invoke, multipart_event, serving, write_square_clip
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from vimo import delivery, storage
from vimo.config import Settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """3 s of 160x120 texture; a dark square crosses it from 1 s to 2 s."""
    return write_square_clip(tmp_path_factory.mktemp("clips") / "square.mp4", seconds=3.0, moving=((1.0, 2.0),),
                             size=(160, 120)).read_bytes()


def clip_event(clip: bytes, *fields):
    return multipart_event([("clip", ("square.mp4", clip, "video/mp4")), *fields])


def fetch(url: str) -> tuple[bytes, str]:
    """A plain HTTP GET, as a browser or curl would do it: no AWS library involved."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30) as answer:
        return answer.read(), answer.headers.get("Content-Type")


def key_of(url: str, bucket: str) -> str:
    path = urlsplit(url).path
    assert path.startswith(f"/{bucket}/"), url
    return path[len(bucket) + 2:]


def test_delivery_s3_answers_json_with_a_url_that_serves_the_same_jpeg(s3_bucket, clip):
    inline = invoke(clip_event(clip))
    assert inline["statusCode"] == 200 and header(inline, "Content-Type") == "image/jpeg"

    response = invoke(clip_event(clip, ("delivery", "s3")))
    assert response["statusCode"] == 200, body_bytes(response)
    assert header(response, "Content-Type") == "application/json"
    payload = body_json(response)
    assert len(payload["events"]) == 1 and payload["video"]["width"] == 160
    url = payload["montage_url"]
    assert url.startswith(s3_bucket.endpoint + f"/{s3_bucket.name}/montages/")

    data, content_type = fetch(url)
    assert data == body_bytes(inline)
    assert content_type == "image/jpeg"
    stored = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key_of(url, s3_bucket.name))
    assert stored["ContentType"] == "image/jpeg"
    assert stored["ContentLength"] == len(data)


def test_default_delivery_from_the_environment(s3_bucket, clip, monkeypatch):
    monkeypatch.setenv("DEFAULT_DELIVERY", "s3")
    payload = body_json(invoke(clip_event(clip)))
    assert fetch(payload["montage_url"])[0][:3] == b"\xff\xd8\xff"
    # The request can still ask for the JPEG inline.
    inline = invoke(clip_event(clip, ("delivery", "inline")))
    assert header(inline, "Content-Type") == "image/jpeg"


def test_json_with_delivery_s3_stores_the_montage_too(s3_bucket, clip):
    payload = body_json(invoke(clip_event(clip, ("format", "json"), ("delivery", "s3"))))
    assert fetch(payload["montage_url"])[0][:3] == b"\xff\xd8\xff"


def test_a_montage_too_big_for_the_response_goes_to_s3(s3_bucket, clip, monkeypatch):
    monkeypatch.setattr(delivery, "INLINE_LIMIT", 100)  # any real JPEG is over this
    response = invoke(clip_event(clip))
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    payload = body_json(response)
    assert payload["events"] and fetch(payload["montage_url"])[0][:3] == b"\xff\xd8\xff"


def test_the_real_limit_leaves_room_for_base64_and_headers():
    from vimo.config import LAMBDA_PAYLOAD_LIMIT

    assert delivery.INLINE_LIMIT * 4 / 3 + 16 * 1024 <= LAMBDA_PAYLOAD_LIMIT + 4


def test_two_concurrent_requests_get_two_objects(s3_bucket, clip):
    """Two requests at once through the local gateway (one worker process each, as on Lambda)."""
    from vimo.gateway import Gateway

    session = requests.Session()
    session.trust_env = False
    barrier = threading.Barrier(2)

    def post(_):
        barrier.wait()
        answer = session.post(f"{base}/motion?delivery=s3", files={"clip": ("square.mp4", clip, "video/mp4")},
                              timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()["montage_url"]

    with serving(Gateway(("127.0.0.1", 0), workers=2)) as base, concurrent.futures.ThreadPoolExecutor(2) as pool:
        urls = list(pool.map(post, range(2)))
    keys = {key_of(url, s3_bucket.name) for url in urls}
    assert len(keys) == 2
    listed = {o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]}
    assert listed == keys
    assert fetch(urls[0])[0] == fetch(urls[1])[0]  # same clip, same montage, two private copies


# --- the presigned URL, checked in code -------------------------------------------------------------

def sigv4_presigned_signature(url: str, secret_key: str, region: str) -> str:
    """The SigV4 query-string signature of a presigned S3 GET, computed from the AWS documentation
    ("Authenticating Requests: Using Query Parameters"), independently of botocore."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    params = dict(query)
    assert params["X-Amz-SignedHeaders"] == "host"
    canonical_request = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host",
                                   "UNSIGNED-PAYLOAD"])
    amz_date = params["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_presigned_url_is_sigv4_with_the_configured_expiry(s3_bucket):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    url = storage.store_montage(b"\xff\xd8\xff\xe0 not really a jpeg", Settings(results_bucket=s3_bucket.name,
                                                                               url_expiry=900))
    after = datetime.datetime.now(datetime.timezone.utc)
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "900"
    signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=1) <= signed_at <= after
    assert params["X-Amz-Credential"] == f"{s3_bucket.access_key}/{signed_at:%Y%m%d}/{s3_bucket.region}/s3/aws4_request"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert re.fullmatch(r"[0-9a-f]{64}", params["X-Amz-Signature"])
    assert params["X-Amz-Signature"] == sigv4_presigned_signature(url, s3_bucket.secret_key, s3_bucket.region)
    # Tampering with anything signed breaks the signature.
    longer = url.replace("X-Amz-Expires=900", "X-Amz-Expires=604800")
    assert sigv4_presigned_signature(longer, s3_bucket.secret_key, s3_bucket.region) != params["X-Amz-Signature"]
    assert fetch(url)[0] == b"\xff\xd8\xff\xe0 not really a jpeg"


def test_url_expiry_comes_from_the_environment(s3_bucket, monkeypatch):
    monkeypatch.setenv("URL_EXPIRY", "120")
    url = storage.store_montage(b"\xff\xd8\xff", Settings.from_env())
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Expires"] == "120"


def test_role_credentials_put_the_session_token_in_the_signed_url(s3_bucket, monkeypatch):
    """On Lambda the credentials are temporary: the token must travel in the URL, under the signature."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN")
    storage._client.cache_clear()
    try:
        url = storage.store_montage(b"\xff\xd8\xff", Settings(results_bucket=s3_bucket.name))
    finally:
        storage._client.cache_clear()
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLETOKEN"
    assert params["X-Amz-Signature"] == sigv4_presigned_signature(url, s3_bucket.secret_key, s3_bucket.region)


def test_on_aws_the_url_names_the_regional_endpoint(monkeypatch, tmp_path):
    """No custom endpoint: virtual-hosted URL on the bucket's region, never the redirecting global one."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for region in ("eu-west-1", "us-east-1"):
        monkeypatch.setenv("AWS_REGION", region)
        url = storage.client().generate_presigned_url("get_object", Params={"Bucket": "vimo-results", "Key": "k.jpg"},
                                                      ExpiresIn=60)
        assert urlsplit(url).netloc == f"vimo-results.s3.{region}.amazonaws.com"
        assert url.startswith("https://")


def test_keys_are_fresh_and_unguessable():
    keys = {storage.new_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert re.fullmatch(r"montages/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.jpg", key)


def test_no_bucket_configured_is_a_clear_501(clip, monkeypatch):
    monkeypatch.delenv("RESULTS_BUCKET", raising=False)
    response = invoke(clip_event(clip, ("delivery", "s3")))
    assert response["statusCode"] == 501
    assert body_json(response)["error"]["code"] == "no_results_bucket"


def test_an_unreachable_bucket_is_a_502_not_a_crash(s3_bucket, clip, monkeypatch):
    monkeypatch.setenv("RESULTS_BUCKET", "no-such-bucket-" + s3_bucket.name[-12:])
    started = time.monotonic()
    response = invoke(clip_event(clip, ("delivery", "s3")))
    assert response["statusCode"] == 502
    assert body_json(response)["error"]["code"] == "storage_failed"
    assert time.monotonic() - started < 30
