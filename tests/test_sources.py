"""Where big clips come from: presigned S3 uploads, and movie_url downloads that cannot be aimed inward.

The upload flow runs against moto's S3 server over real HTTP (s3server.py). moto stores whatever a
presigned POST sends without looking at its policy, so ``policy_s3`` puts S3's documented POST-policy
checks in front of it (signature, expiry, every condition, content-length-range): without that, an
"oversized upload refused" test would prove nothing. The checks are written from the S3 docs
("Creating a POST policy", "Calculating a signature"), independently of botocore's signer.

The URL fetcher runs against HTTP(S) servers on 127.0.0.1. Forbidden addresses are never contacted:
the tests fail if the fetcher so much as opens a socket to one.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.formparser import parse_form_data
from werkzeug.serving import make_server

from conftest import serving
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from vimo import sources
from vimo.analysis import analyze_clip
from vimo.config import Options, Settings
from vimo.errors import ApiError

# -- S3: presigned uploads ------------------------------------------------------------------------------


class PostPolicy:
    """WSGI middleware: S3's checks of a browser-based (POST) upload, in front of moto."""

    def __init__(self, app, secret_key: str):
        self.app = app
        self.secret_key = secret_key

    def __call__(self, environ, start_response):
        content_type = environ.get("CONTENT_TYPE", "")
        if environ["REQUEST_METHOD"] != "POST" or not content_type.startswith("multipart/form-data"):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        form_environ = dict(environ, **{"wsgi.input": io.BytesIO(body)})
        _, form, files = parse_form_data(form_environ)
        bucket = environ["PATH_INFO"].strip("/").split("/")[0]
        refusal = self.check(bucket, {k: form[k] for k in form}, files.get("file"))
        if refusal:
            status, code, message = refusal
            xml = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
            start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))])
            return [xml]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    def check(self, bucket: str, form: dict, file) -> tuple[str, str, str] | None:
        denied = "403 Forbidden", "AccessDenied"
        if file is None:
            return "400 Bad Request", "InvalidArgument", "POST requires exactly one file upload per request."
        size = len(file.read())
        try:
            policy_b64 = form["policy"]
            policy = json.loads(base64.b64decode(policy_b64))
            access_key, date, region, service, _ = form["x-amz-credential"].split("/")
        except (KeyError, ValueError):
            return (*denied, "Missing or malformed policy or credential.")
        key = hmac.new(f"AWS4{self.secret_key}".encode(), date.encode(), hashlib.sha256).digest()
        for part in (region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
            return (*denied, "The request signature we calculated does not match the signature you provided.")
        expiration = datetime.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        if expiration.replace(tzinfo=datetime.timezone.utc) < datetime.datetime.now(datetime.timezone.utc):
            return (*denied, "Invalid according to Policy: Policy expired.")
        values = dict(form, bucket=bucket)
        covered = {"bucket"}
        for condition in policy["conditions"]:
            if isinstance(condition, dict):
                (name, value), = condition.items()
                condition = ["eq", f"${name}", value]
            operator = condition[0].lower()
            if operator == "content-length-range":
                if not condition[1] <= size <= condition[2]:
                    return ("400 Bad Request", "EntityTooLarge" if size > condition[2] else "EntityTooSmall",
                            "Your proposed upload exceeds the maximum allowed size." if size > condition[2]
                            else "Your proposed upload is smaller than the minimum allowed size.")
                continue
            name = condition[1].lstrip("$")
            field = next((k for k in values if k.lower() == name.lower()), None)
            covered.add(name.lower())
            value = values.get(field, "")
            if operator == "eq" and value != condition[2] or operator == "starts-with" and not value.startswith(condition[2]):
                return (*denied, f"Invalid according to Policy: Policy Condition failed: {condition}")
        for name in form:
            lowered = name.lower()
            if lowered not in covered and lowered not in ("policy", "x-amz-signature", "file") \
                    and not lowered.startswith("x-ignore-"):
                return (*denied, f"Invalid according to Policy: Extra input fields: {name}")
        return None


@pytest.fixture
def policy_s3(s3_bucket, monkeypatch):
    """The moto bucket, reached through an endpoint that enforces POST policies as S3 does."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    server = make_server("127.0.0.1", 0, PostPolicy(DomainDispatcherApplication(create_backend_app), s3_bucket.secret_key),
                         threaded=True)
    with serving(server) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield s3_bucket


def settings_for(bucket, **changes) -> Settings:
    return Settings(results_bucket=bucket.name, **changes)


def post_upload(presigned: dict, data: bytes, **field_changes) -> requests.Response:
    fields = dict(presigned["fields"], **field_changes)
    files = {presigned["file_field"]: ("clip.mp4", data, "video/mp4")}
    return requests.post(presigned["url"], data=fields, files=files, timeout=30,
                         proxies={"http": None, "https": None})


def object_exists(bucket, key: str) -> bool:
    listing = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=key)
    return any(o["Key"] == key for o in listing.get("Contents", []))


def test_presigned_upload_flow_then_analysis_over_http(policy_s3, square_clip):
    settings = settings_for(policy_s3)
    presigned = sources.presign_upload(settings)

    assert presigned["key"].startswith("uploads/") and presigned["max_bytes"] == settings.max_source_bytes
    assert presigned["expires_in"] == settings.upload_expiry and presigned["method"] == "POST"
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    assert ["content-length-range", 1, settings.max_source_bytes] in policy["conditions"]
    assert ["starts-with", "$key", "uploads/"] in policy["conditions"]
    assert {"key": presigned["key"]} in policy["conditions"]

    answer = post_upload(presigned, square_clip.read_bytes())
    assert answer.status_code == 204, answer.text
    stored = policy_s3.client.get_object(Bucket=policy_s3.name, Key=presigned["key"])
    assert stored["Body"].read() == square_clip.read_bytes()
    assert stored["ContentType"] == sources.UPLOAD_CONTENT_TYPE

    url = sources.open_s3_clip(presigned["key"], settings)
    assert url.startswith(policy_s3.client.meta.endpoint_url.rsplit(":", 1)[0]) or url.startswith("http://127.0.0.1")
    result = analyze_clip(url, Options(), settings)  # FFmpeg reads the object over HTTP
    assert len(result.events) == 1
    assert 1.5 <= result.events[0].start <= 2.5 and 3.5 <= result.events[0].end <= 4.6


def test_oversized_upload_is_refused_by_s3(policy_s3):
    settings = settings_for(policy_s3, max_source_bytes=10_000)
    presigned = sources.presign_upload(settings)
    answer = post_upload(presigned, b"x" * 10_001)
    assert answer.status_code == 400 and "EntityTooLarge" in answer.text
    assert not object_exists(policy_s3, presigned["key"])
    assert post_upload(presigned, b"x" * 10_000).status_code == 204  # the cap itself is allowed


@pytest.mark.parametrize("field, value", [
    ("key", "montages/2024/01/01/" + "0" * 32 + ".jpg"),   # someone else's object
    ("key", "uploads/2024/01/01/" + "1" * 32),             # under the prefix, but not the key handed out
    ("Content-Type", "application/vnd.apple.mpegurl"),      # an HLS playlist, which FFmpeg would follow
])
def test_upload_outside_the_policy_is_refused(policy_s3, field, value):
    presigned = sources.presign_upload(settings_for(policy_s3))
    answer = post_upload(presigned, b"data", **{field: value})
    assert answer.status_code == 403, answer.text
    assert not object_exists(policy_s3, value if field == "key" else presigned["key"])


def test_a_raised_size_cap_breaks_the_signature(policy_s3):
    presigned = sources.presign_upload(settings_for(policy_s3, max_source_bytes=10_000))
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    policy["conditions"] = [["content-length-range", 1, 10**9] if isinstance(c, list) and c[0] == "content-length-range"
                            else c for c in policy["conditions"]]
    forged = base64.b64encode(json.dumps(policy).encode()).decode()
    answer = post_upload(presigned, b"x" * 20_000, policy=forged)
    assert answer.status_code == 403 and "signature" in answer.text
    assert not object_exists(policy_s3, presigned["key"])


def test_an_expired_upload_is_refused(policy_s3):
    presigned = sources.presign_upload(settings_for(policy_s3, upload_expiry=1))
    time.sleep(2.1)
    assert post_upload(presigned, b"data").status_code == 403


def test_s3_key_must_be_an_existing_upload(policy_s3):
    settings = settings_for(policy_s3)
    for bad in ("montages/2024/01/01/" + "0" * 32 + ".jpg", "uploads/../montages/x", "", None, 42,
                "uploads/2024/01/01/" + "0" * 32 + ".m3u8"):
        with pytest.raises(ApiError) as refused:
            sources.open_s3_clip(bad, settings)
        assert refused.value.status == 400 and refused.value.code == "bad_s3_key"
    with pytest.raises(ApiError) as missing:
        sources.open_s3_clip("uploads/2024/01/01/" + "a" * 32, settings)
    assert missing.value.status == 404 and missing.value.code == "no_such_upload"


def test_no_bucket_configured():
    with pytest.raises(ApiError) as refused:
        sources.presign_upload(Settings())
    assert refused.value.status == 501


# -- URLs ------------------------------------------------------------------------------------------------

CLIP = bytes(range(256)) * 400  # 102,400 bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = url.path
        if route == "/clip":
            self._send(200, CLIP)
        elif route == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif route == "/redirect":
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/big":  # announces its size
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"\0" * 65536)
        elif route == "/endless":  # chunked, no size announced, never ends
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(10_000):
                    self.wfile.write(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
            except OSError:
                pass
        elif route == "/trickle":  # a byte every 0.1 s: never idle long enough for a read timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif route == "/stall":  # accepts, then says nothing
            time.sleep(3)
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up (size cap, timeouts, refused certificates) are the point of these tests


@pytest.fixture(scope="module")
def web():
    with serving(QuietServer(("127.0.0.1", 0), Handler)) as url:
        yield url


LOOPBACK_OK = Settings(allow_loopback_urls=True, fetch_timeout=2.0, fetch_total_timeout=5.0, max_source_bytes=1_000_000)
PUBLIC_ONLY = Settings(fetch_timeout=2.0, fetch_total_timeout=5.0)


@pytest.fixture
def connections(monkeypatch):
    """Every address the fetcher connects to."""
    made = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        made.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(sources.socket, "create_connection", spy)
    return made


def refused(url: str, settings: Settings, tmp_path: Path) -> ApiError:
    with pytest.raises(ApiError) as error:
        sources.fetch_url(url, tmp_path / "clip", settings)
    assert not (tmp_path / "clip").exists()
    return error.value


def test_fetch_streams_the_clip_to_a_file(web, tmp_path):
    fetched = sources.fetch_url(f"{web}/clip", tmp_path / "clip", LOOPBACK_OK)
    assert fetched.size == len(CLIP) and (tmp_path / "clip").read_bytes() == CLIP
    assert fetched.content_type == "video/mp4"


FORBIDDEN = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
    "http://169.254.170.2/v2/credentials",                                  # container credentials
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://0.0.0.0/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://[::]/", "http://[fe80::1]/", "http://[fd00::1]/", "http://[ff02::1]/",
    "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/", "http://[2002:a00:1::]/",  # IPv4 inside IPv6
    "http://2852039166/", "http://0xa9.0xfe.0xa9.0xfe/", "http://0251.0376.0251.0376/",        # 169.254.169.254 spelled oddly
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_forbidden_addresses_are_never_contacted(url, tmp_path, connections):
    error = refused(url, LOOPBACK_OK, tmp_path)
    assert (error.status, error.code) == (400, "forbidden_url")
    assert "only public addresses" in error.message
    assert connections == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://127.7.7.7/", "http://[::1]/", "http://localhost/",
                                 "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0x7f.1/"])
def test_loopback_is_refused_unless_allowed(url, tmp_path, connections):
    error = refused(url, PUBLIC_ONLY, tmp_path)
    assert error.code == "forbidden_url" and "loopback" in error.message
    assert connections == []


@pytest.mark.parametrize("url, code", [
    ("file:///etc/passwd", "bad_url"), ("ftp://example.com/clip.mp4", "bad_url"), ("gopher://x/", "bad_url"),
    ("//example.com/clip.mp4", "bad_url"), ("http:///clip.mp4", "bad_url"), ("http://user:pw@example.com/", "bad_url"),
    ("http://example.com:99999/", "bad_url"), ("not a url", "bad_url"),
])
def test_only_plain_http_and_https_urls(url, code, tmp_path, connections):
    assert refused(url, LOOPBACK_OK, tmp_path).code == code
    assert connections == []


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/", "http://10.1.2.3:8080/admin",
    "file:///etc/passwd",
])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_checked_at_every_hop(web, target, status, tmp_path, connections):
    error = refused(f"{web}/redirect?status={status}&to={target}", LOOPBACK_OK, tmp_path)
    assert error.code in ("forbidden_url", "bad_url")
    assert connections == ["127.0.0.1"]  # the first hop only


def test_redirects_to_allowed_places_are_followed(web, tmp_path):
    fetched = sources.fetch_url(f"{web}/redirect?to=/redirect%3Fto%3D/clip", tmp_path / "clip", LOOPBACK_OK)
    assert fetched.size == len(CLIP) and fetched.url == f"{web}/clip"


def test_redirect_loops_end(web, tmp_path):
    error = refused(f"{web}/loop", LOOPBACK_OK, tmp_path)
    assert error.code == "fetch_failed" and "redirects" in error.message


def test_dns_is_resolved_once_and_the_checked_address_is_used(web, tmp_path, monkeypatch, connections):
    """DNS rebinding: a name that resolves to a harmless address when checked and to the metadata
    address a moment later must still be fetched from the harmless one."""
    answers = {"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]}
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]

    monkeypatch.setattr(sources, "_resolve", resolve)
    port = urlsplit(web).port
    fetched = sources.fetch_url(f"http://rebind.test:{port}/host", tmp_path / "host", LOOPBACK_OK)
    assert (tmp_path / "host").read_bytes() == f"rebind.test:{port}".encode()  # Host: the name, not the IP
    assert lookups == ["rebind.test"] and connections == ["127.0.0.1"]
    assert fetched.size > 0


def test_a_name_with_any_forbidden_address_is_refused(tmp_path, monkeypatch, connections):
    monkeypatch.setattr(sources, "_resolve", lambda host, port: ["127.0.0.1", "10.0.0.7"])
    error = refused("http://mixed.test/clip", LOOPBACK_OK, tmp_path)
    assert error.code == "forbidden_url" and "10.0.0.7" in error.message
    assert connections == []


def test_unresolvable_hosts(tmp_path, monkeypatch):
    def fail(host, port):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(sources, "_resolve", fail)
    assert refused("https://no-such-host.invalid/clip.mp4", PUBLIC_ONLY, tmp_path).code == "fetch_failed"


def test_announced_oversize_is_refused_before_reading(web, tmp_path):
    error = refused(f"{web}/big", LOOPBACK_OK, tmp_path)
    assert (error.status, error.code) == (413, "too_large")


def test_unannounced_oversize_is_cut_off_while_streaming(web, tmp_path):
    started = time.monotonic()
    error = refused(f"{web}/endless", LOOPBACK_OK, tmp_path)
    assert (error.status, error.code) == (413, "too_large")
    assert time.monotonic() - started < 3


def test_a_trickle_is_stopped_by_the_total_timeout(web, tmp_path):
    settings = Settings(allow_loopback_urls=True, fetch_timeout=2.0, fetch_total_timeout=1.0)
    started = time.monotonic()
    error = refused(f"{web}/trickle", settings, tmp_path)
    assert (error.status, error.code) == (504, "fetch_timeout")
    assert time.monotonic() - started < 2.5


def test_a_silent_server_is_stopped_by_the_read_timeout(web, tmp_path):
    settings = Settings(allow_loopback_urls=True, fetch_timeout=0.5, fetch_total_timeout=10.0)
    started = time.monotonic()
    error = refused(f"{web}/stall", settings, tmp_path)
    assert error.code == "fetch_timeout" and time.monotonic() - started < 2


def test_the_request_deadline_bounds_the_download(web, tmp_path):
    with pytest.raises(ApiError) as error:
        sources.fetch_url(f"{web}/trickle", tmp_path / "clip", LOOPBACK_OK, deadline=time.monotonic() + 0.5)
    assert error.value.code == "fetch_timeout"


def test_http_errors_are_reported(web, tmp_path):
    error = refused(f"{web}/missing", LOOPBACK_OK, tmp_path)
    assert (error.status, error.code) == (502, "fetch_failed") and "404" in error.message


# -- TLS: the certificate is checked against the host name, though the connection goes to the IP -----


@pytest.fixture(scope="module")
def tls_web(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 whose certificate names only ``video.test``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "video.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("video.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = QuietServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield server.server_port, folder / "cert.pem"


def test_tls_uses_the_host_name_for_sni_and_verification(tls_web, tmp_path, monkeypatch, connections):
    port, cert = tls_web
    monkeypatch.setattr(sources, "_tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    monkeypatch.setattr(sources, "_resolve", lambda host, p: ["127.0.0.1"])
    fetched = sources.fetch_url(f"https://video.test:{port}/clip", tmp_path / "clip", LOOPBACK_OK)
    assert fetched.size == len(CLIP) and connections == ["127.0.0.1"]

    error = refused(f"https://elsewhere.test:{port}/clip", LOOPBACK_OK, tmp_path)  # same IP, wrong name
    assert error.code == "fetch_failed" and "TLS" in error.message


def test_tls_refuses_an_unknown_certificate(tls_web, tmp_path, monkeypatch):
    port, _ = tls_web
    monkeypatch.setattr(sources, "_resolve", lambda host, p: ["127.0.0.1"])
    error = refused(f"https://video.test:{port}/clip", LOOPBACK_OK, tmp_path)  # self-signed: not in the CA bundle
    assert error.code == "fetch_failed" and "TLS" in error.message


def test_forbidden_covers_the_special_ranges():
    assert sources.forbidden("8.8.8.8") is None and sources.forbidden("2606:4700:4700::1111") is None
    assert sources.forbidden("127.0.0.1") == "loopback" and sources.forbidden("127.0.0.1", allow_loopback=True) is None
    assert sources.forbidden("::1", allow_loopback=True) is None
    assert "link-local" in sources.forbidden("169.254.169.254", allow_loopback=True)
    assert "link-local" in sources.forbidden("2001::5601:5601")  # Teredo, whose client is 169.254.169.254
    assert sources.forbidden("fe80::1%eth0") is not None
