"""Where a clip comes from when it is too big to ride in the request: S3, or a URL.

API Gateway and Lambda carry about 4.4 MB of raw bytes per request, so anything bigger arrives
another way:

* ``presign_upload``: ``POST /uploads`` hands the client a presigned S3 POST (URL and form fields).
  The client sends the clip straight to S3, then ``POST /motion`` with ``{"s3_key": ...}``. The
  size cap and the key are part of the *signed policy*: S3 itself refuses a bigger file or another
  key, so nothing depends on the client behaving.
* ``fetch_url``: ``{"movie_url": "https://..."}`` is downloaded, streamed to a file in the request's
  work directory, with a size cap and timeouts. A server must never be made to fetch from its own
  network (loopback, private ranges, the link-local cloud metadata address 169.254.169.254, ...):
  the host is resolved once, every address it resolves to is checked, and the connection goes to
  the checked address while the ``Host`` header, TLS SNI and certificate check still use the
  hostname, so DNS rebinding cannot swap the address in between. Redirects are followed by hand,
  each hop checked the same way.
* ``open_s3_clip``: what FFmpeg opens for an uploaded clip: a short-lived presigned GET URL.

Why FFmpeg reads S3 over HTTP but a movie_url through a file: FFmpeg seeks over HTTP with range
requests, so a segment worker reads the container index plus its own stretch of an hour-long clip
instead of downloading gigabytes first, and nothing has to fit in Lambda's /tmp. That is safe only
because we choose the host (our own bucket's endpoint) and the key (validated to be an upload).
A movie_url names a host the caller chose: FFmpeg would resolve it and follow its redirects by
itself, with no address check, so that clip goes through ``fetch_url`` into a file instead. The
file (or, for a fan-out on Lambda, a copy of it uploaded to S3) is then what FFmpeg opens.
Uploaded objects are stored with a fixed Content-Type and under keys without an extension, so
FFmpeg's HLS demuxer (which would follow URLs inside a playlist) never takes an upload for one.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from .config import Settings
from .errors import ApiError, bad_request, storage_failed, too_large

UPLOAD_PREFIX = "uploads/"
UPLOAD_CONTENT_TYPE = "application/octet-stream"
UPLOADS_NEED_S3 = "Uploads go through S3"  # what a 501 says when no bucket is configured
# The keys presign_upload makes: uploads/YYYY/MM/DD/<32 hex digits>. Nothing else is ever read.
UPLOAD_KEY = re.compile(r"uploads/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}")
# Seconds a presigned GET for FFmpeg stays valid: long enough for the longest invocation (15 min).
READ_URL_EXPIRY = 1800
MAX_REDIRECTS = 5
CHUNK = 1024 * 1024
REDIRECTS = {301, 302, 303, 307, 308}


# -- S3 ----------------------------------------------------------------------------------------------


def presign_upload(settings: Settings) -> dict:
    """A presigned POST for one clip of at most ``max_source_bytes`` under a new ``uploads/`` key.

    The answer is what a client needs and nothing it must guess: POST ``url`` as multipart/form-data
    with every entry of ``fields`` first and the file last, in a part named ``file``. S3 checks the
    signed policy: the key (exactly this one, and in any case under ``uploads/``), the size
    (``content-length-range``), the Content-Type and the expiry.
    """
    from .storage import client, new_key, results_bucket

    bucket = results_bucket(settings, UPLOADS_NEED_S3)
    key = new_key(UPLOAD_PREFIX, "")
    conditions = [
        ["starts-with", "$key", UPLOAD_PREFIX],
        ["content-length-range", 1, settings.max_source_bytes],
        {"Content-Type": UPLOAD_CONTENT_TYPE},
    ]
    try:
        post = client().generate_presigned_post(bucket, key, Fields={"Content-Type": UPLOAD_CONTENT_TYPE},
                                                Conditions=conditions, ExpiresIn=settings.upload_expiry)
    except Exception as exc:  # botocore raises several types (no credentials, bad config); all mean the same
        raise storage_failed(f"Could not prepare an upload: {exc}") from None
    return {
        "url": post["url"],
        "method": "POST",
        "fields": post["fields"],
        "file_field": "file",
        "key": key,
        "expires_in": settings.upload_expiry,
        "max_bytes": settings.max_source_bytes,
        "next": {"method": "POST", "path": "/motion", "json": {"s3_key": key}},
    }


def check_upload_key(key: object) -> str:
    """``key`` if it is one of ours (an upload key presign_upload made), else a 400."""
    if not isinstance(key, str) or not UPLOAD_KEY.fullmatch(key):
        raise bad_request("bad_s3_key", "'s3_key' must be the key POST /uploads returned "
                                        "(uploads/YYYY/MM/DD/<32 hex digits>).")
    return key


def open_s3_clip(key: str, settings: Settings) -> str:
    """A presigned GET URL of an uploaded clip, for FFmpeg to open and seek in over HTTP.

    Checks first that the key is an upload key and that the object exists and is within the cap
    (S3 already refused bigger uploads; this also covers objects put there any other way).
    """
    key = check_upload_key(key)
    from botocore.exceptions import BotoCoreError, ClientError

    from .storage import client, results_bucket

    bucket = results_bucket(settings, UPLOADS_NEED_S3)

    s3 = client()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise ApiError(404, "no_such_upload", "No clip has been uploaded under this 's3_key' (or it has "
                                                  "expired): upload it with the URL and fields of POST /uploads first.") from None
        raise storage_failed(f"The uploaded clip could not be read from S3: {exc}") from None
    size = head.get("ContentLength", 0)
    if size > settings.max_source_bytes:
        raise too_large(f"The uploaded clip is {size / 1e6:.0f} MB; at most {settings.max_source_bytes / 1e6:.0f} MB "
                        "are accepted.")
    if size == 0:
        raise bad_request("empty_part", "The uploaded clip is empty.")
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=READ_URL_EXPIRY)


def store_source(path: Path, settings: Settings) -> str:
    """Copy a local clip (a fetched movie_url) to S3 under a new upload key, for segment workers."""
    from .storage import client, new_key, results_bucket

    bucket = results_bucket(settings, UPLOADS_NEED_S3)
    key = new_key(UPLOAD_PREFIX, "")
    from botocore.exceptions import BotoCoreError, ClientError
    from boto3.exceptions import S3UploadFailedError

    try:
        client().upload_file(str(path), bucket, key, ExtraArgs={"ContentType": UPLOAD_CONTENT_TYPE})
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise storage_failed(f"The clip could not be copied to S3 for analysis: {exc}") from None
    return key


# -- URLs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    url: str  # after redirects
    content_type: str


def fetch_url(url: str, destination: Path | str, settings: Settings, deadline: float | None = None) -> Fetched:
    """Download ``url`` to ``destination``, streamed, refusing what a server must not fetch.

    ``deadline`` is a ``time.monotonic()`` value; the download also stops after
    ``settings.fetch_total_timeout`` seconds, however slowly the bytes trickle in.
    """
    destination = Path(destination)
    deadline = min(deadline or float("inf"), time.monotonic() + settings.fetch_total_timeout)
    try:
        return _fetch(url, destination, settings, deadline)
    except BaseException:
        remove(destination)  # never leave half a clip behind
        raise


def _fetch(url: str, destination: Path, settings: Settings, deadline: float) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        target = _check_url(url)
        address = _checked_address(target.hostname, target.port, settings)
        connection = _connect(target, address, settings.fetch_timeout)
        try:
            response = _request(connection, target, deadline)
            if response.status in REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise _fetch_failed(f"{url} answered {response.status} without a Location.")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise _fetch_failed(f"{url} answered HTTP {response.status} {response.reason}.")
            size = _save(response, destination, settings.max_source_bytes, deadline)
            return Fetched(destination, size, url, response.getheader("Content-Type") or "")
        except socket.timeout:
            raise _timeout(url) from None
        except ssl.SSLError as exc:
            raise _fetch_failed(f"TLS with {target.hostname} failed: {exc.reason or exc}.") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _fetch_failed(f"Reading {url} failed: {exc or type(exc).__name__}.") from None
        finally:
            connection.close()
    raise _fetch_failed(f"More than {MAX_REDIRECTS} redirects.")


@dataclass(frozen=True)
class _Target:
    scheme: str
    hostname: str
    port: int
    path: str  # with the query


def _check_url(url: str, name: str = "movie_url") -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad_request("bad_url", f"'{name}' is not a valid URL: {url!r}.") from None
    if parts.scheme not in ("http", "https"):
        raise bad_request("bad_url", f"'{name}' must be an http or https URL; got {parts.scheme or 'no'} scheme.")
    if not parts.hostname:
        raise bad_request("bad_url", f"'{name}' has no host.")
    if parts.username is not None or parts.password is not None:
        raise bad_request("bad_url", f"'{name}' must not carry a user name or password.")
    try:
        hostname = parts.hostname.encode("idna").decode("ascii")  # what DNS, Host and SNI all use
    except UnicodeError:
        raise bad_request("bad_url", f"'{name}' has an invalid host name: {parts.hostname!r}.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(ch in path for ch in "\r\n ") or not path.isascii():
        path = quote(path, safe="/?&=%:@!$'()*+,;~-._")
    return _Target(parts.scheme, hostname, port or (443 if parts.scheme == "https" else 80), path)


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one lookup; tests replace this to play DNS tricks)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _checked_address(host: str, port: int, settings: Settings, name: str = "movie_url") -> str:
    """The address to connect to: the host's first address, if *every* address it has is allowed.

    All of them are checked, not only the one used, so that a name with one public and one private
    address is refused outright rather than depending on the order the resolver returns them in.
    """
    try:
        addresses = _resolve(host, port)
    except (socket.gaierror, UnicodeError):
        raise _fetch_failed(f"The host {host!r} could not be resolved.") from None
    if not addresses:
        raise _fetch_failed(f"The host {host!r} has no address.")
    for address in addresses:
        reason = forbidden(address, settings.allow_loopback_urls)
        if reason:
            raise ApiError(400, "forbidden_url", f"'{name}' points to {address} ({reason}), which this server "
                                                 "does not fetch from: only public addresses are allowed.")
    return addresses[0]


def public_target(url: str, settings: Settings, name: str) -> tuple[_Target, str]:
    """A URL a server is about to send to (a callback, see ``callbacks``): its parts and the one
    address to connect to, checked as a movie_url's are (resolved once, every address public)."""
    target = _check_url(url, name)
    return target, _checked_address(target.hostname, target.port, settings, name)


def check_url(url: str, settings: Settings, name: str) -> str:
    """``url`` if it is a well-formed http(s) URL and, when its host is an address, a public one;
    names are resolved only when the URL is used (``public_target``)."""
    target = _check_url(url, name)
    try:
        address = ipaddress.ip_address(target.hostname.strip("[]"))
    except ValueError:
        return url
    reason = forbidden(str(address), settings.allow_loopback_urls)
    if reason:
        raise ApiError(400, "forbidden_url", f"'{name}' points to {address} ({reason}), which this server does "
                                             "not connect to: only public addresses are allowed.")
    return url


def forbidden(address: str, allow_loopback: bool = False) -> str | None:
    """Why a server must not connect to ``address``, or None if it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 (::ffff:a.b.c.d, 6to4, Teredo) reaches that IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return forbidden(str(embedded), allow_loopback)
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_link_local:
        return "link-local, where the cloud metadata service lives"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private network"
    if not ip.is_global:
        return "not a public address"  # shared (100.64/10), reserved, documentation ranges
    return None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked address; ``host`` (Host header) stays the name from the URL."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """As above, with TLS: SNI and certificate verification use the hostname, not the address."""

    default_port = 443

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, address, timeout)
        self._context = context

    def connect(self):
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One context for every connection: building one parses the CA bundle (~60 ms)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


def _connect(target: _Target, address: str, timeout: float) -> _PinnedHTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target.hostname, target.port, address, timeout, _tls_context())
    return _PinnedHTTPConnection(target.hostname, target.port, address, timeout)


def _request(connection: _PinnedHTTPConnection, target: _Target, deadline: float) -> http.client.HTTPResponse:
    if time.monotonic() > deadline:
        raise socket.timeout()
    connection.request("GET", target.path, headers={
        "Accept": "video/*, application/octet-stream;q=0.9, */*;q=0.5",
        "Accept-Encoding": "identity",
        "User-Agent": "vimo (+motion montage)",
    })
    return connection.getresponse()


def _save(response: http.client.HTTPResponse, destination: Path, limit: int, deadline: float) -> int:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large_source(limit)
    size = 0
    with open(destination, "wb") as out:
        while True:
            if time.monotonic() > deadline:
                raise socket.timeout()
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _too_large_source(limit)
            out.write(chunk)
    if size == 0:
        raise bad_request("empty_part", "The clip at 'movie_url' is empty.")
    return size


def _too_large_source(limit: int) -> ApiError:
    return too_large(f"The clip at 'movie_url' is larger than {limit / 1e6:.0f} MB, the most accepted.")


def _fetch_failed(message: str) -> ApiError:
    return ApiError(502, "fetch_failed", f"The clip could not be fetched from 'movie_url': {message}")


def _timeout(url: str) -> ApiError:
    return ApiError(504, "fetch_timeout", f"Fetching {url} took too long: the server was too slow to answer or to "
                                          "send the clip.")


def remove(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
