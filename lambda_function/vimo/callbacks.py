"""Callbacks: a finished job's JSON POSTed to the caller's ``callback_url``, signed and retried.

The body is exactly what ``GET /jobs/{id}`` answers at that moment. It is signed so that the
receiver can tell it came from this deployment: ``X-Vimo-Signature: sha256=<hex>``, the
HMAC-SHA256 of the raw body under ``settings.webhook_secret`` (the README shows a receiver checking
it with ``hmac.compare_digest``).

A callback URL is chosen by the caller, so it is guarded like a ``movie_url`` (``sources``): the
host is resolved once, every address it has must be public (``VIMO_ALLOW_LOOPBACK_URLS`` lets tests
use 127.0.0.1), and the connection goes to that address, with the hostname kept for the Host
header, TLS SNI and the certificate check. Redirects are not followed at all: a receiver answers
2xx, and a 3xx is a failed delivery, so no redirect can lead anywhere private.

Retries are urllib3's ``Retry``: ``settings.callback_attempts`` tries in all while the receiver
cannot be reached or answers 408, 425, 429 or 5xx, with exponential backoff (``Retry-After``
honoured); any other answer ends the delivery. What happened is recorded in the job's ``callback``.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from .config import Settings
from .errors import ApiError

SIGNATURE_HEADER = "X-Vimo-Signature"
RETRY_STATUSES = (408, 425, 429, 500, 502, 503, 504)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Vimo-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_callback_url(url: object, settings: Settings) -> str:
    """A callback URL a job may take: well formed, not an address a server must not reach, and a
    secret to sign with (an unsigned callback could have come from anyone)."""
    from .sources import check_url

    if not isinstance(url, str) or not url.strip():
        raise ApiError(400, "bad_url", "'callback_url' must be an http or https URL.")
    if not settings.webhook_secret:
        raise ApiError(501, "no_webhook_secret", "This server has no webhook secret to sign callbacks with: set "
                                                 "WEBHOOK_SECRET before starting it, or leave out 'callback_url'.")
    return check_url(url.strip(), settings, "callback_url")


def deliver(url: str, document: dict, settings: Settings) -> dict:
    """POST ``document`` to ``url``; ``{"url", "delivered", "attempts", "status"?, "error"?}``."""
    import urllib3
    from urllib3.util.retry import Retry

    from .sources import public_target

    body = json.dumps(document, separators=(",", ":")).encode()
    outcome: dict = {"url": url, "delivered": False, "attempts": 0}
    try:
        target, address = public_target(url, settings, "callback_url")
    except ApiError as error:
        return {**outcome, "error": error.message}
    default_port = 443 if target.scheme == "https" else 80
    headers = {
        "Host": target.hostname if target.port == default_port else f"{target.hostname}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": "vimo-callback",
        SIGNATURE_HEADER: sign(body, settings.webhook_secret or ""),
    }
    timeout = urllib3.Timeout(connect=settings.fetch_timeout, read=settings.fetch_timeout)
    if target.scheme == "https":
        from .sources import _tls_context

        pool = urllib3.HTTPSConnectionPool(address, target.port, timeout=timeout, server_hostname=target.hostname,
                                           assert_hostname=target.hostname, ssl_context=_tls_context(), maxsize=1)
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, maxsize=1)
    retries = Retry(total=max(0, settings.callback_attempts - 1), redirect=False, allowed_methods=None,
                    status_forcelist=RETRY_STATUSES, backoff_factor=settings.callback_backoff,
                    raise_on_status=False, raise_on_redirect=False)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers=headers, retries=retries, redirect=False,
                                assert_same_host=False, preload_content=True)
    except urllib3.exceptions.HTTPError as exc:  # unreachable every time (MaxRetryError), or worse
        reason = getattr(exc, "reason", None) or exc
        return {**outcome, "attempts": settings.callback_attempts, "error": f"{type(reason).__name__}: {reason}"}
    finally:
        pool.close()
    history = response.retries.history if response.retries else ()
    outcome.update(attempts=len(history) + 1, status=response.status, delivered=200 <= response.status < 300)
    if not outcome["delivered"]:
        outcome["error"] = f"The receiver answered HTTP {response.status}."
    return outcome
