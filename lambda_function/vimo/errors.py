"""The one exception type that crosses stage boundaries.

Every stage raises ``ApiError`` for input it cannot use, with the HTTP status and a stable code, so
that the handler turns any refusal into the same JSON body without knowing which stage refused.
Anything else that escapes is a bug and is answered as a 500.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses: ``status`` is the HTTP status, ``code`` a stable machine name."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


def unsupported(code: str, message: str) -> ApiError:
    return ApiError(415, code, message)


def storage_failed(message: str) -> ApiError:
    """S3 failed us (credentials, network, a missing bucket policy): the gateway's side, not the client's."""
    return ApiError(502, "storage_failed", message)
