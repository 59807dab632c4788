"""Gateway event -> ``Upload``: the media a caller sent and the options they chose.

API Gateway (with binary media types on) hands the function a base64 body and the client's headers
exactly as sent, in any letter case. Everything that can be wrong with a request's *shape* is
refused here, before a byte is decoded: bad base64, multipart without a boundary or a closing
delimiter, a missing ``clip``/``frame`` part, unknown options. Whether the bytes really are a video
or an image is the next stage's question.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.utils
import json
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from .config import OPTION_SPECS, Options, Settings
from .errors import ApiError, bad_request, too_large, unsupported
from .sources import check_upload_key

MULTIPART = "multipart/form-data"
SOURCE_NAMES = ("s3_key", "movie_url")


@dataclass(frozen=True)
class Part:
    """One uploaded file. ``name`` is for display only and is never used as a path."""

    data: bytes
    content_type: str
    name: str


@dataclass(frozen=True)
class Upload:
    """A clip, or an ordered burst of frames, with the options for analysing it."""

    options: Options
    clip: Part | None = None
    frames: tuple[Part, ...] = field(default_factory=tuple)
    # A clip sent by reference: {"s3_key": ...} (after POST /uploads) or {"movie_url": ...}.
    source: dict | None = None

    @property
    def name(self) -> str:
        if self.source is not None:
            return _clean_name(urlsplit(self.source.get("movie_url", "")).path, "clip")
        if self.clip is not None:
            return self.clip.name
        return f"{len(self.frames)} frames" if len(self.frames) != 1 else self.frames[0].name


class Headers:
    """Request headers matched case-insensitively; a repeated header keeps all its values."""

    def __init__(self, event: Mapping):
        self._values: dict[str, list[str]] = {}
        for name, values in (event.get("multiValueHeaders") or {}).items():
            self._values.setdefault(name.lower(), []).extend(str(v) for v in values or [])
        for name, value in (event.get("headers") or {}).items():
            self._values.setdefault(name.lower(), [str(value)])

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name.lower())
        return values[0] if values else default


def parse_event(event: Mapping, settings: Settings) -> Upload:
    """The ``Upload`` an ``aws_proxy`` event carries, or an ``ApiError`` saying what is wrong."""
    headers = Headers(event)
    body = _body_bytes(event, settings)
    content_type = headers.get("content-type")
    media_type = content_type.split(";", 1)[0].strip().lower()
    fields = dict(event.get("queryStringParameters") or {})

    source = None
    if media_type == MULTIPART:
        clip, frames, form = _parse_multipart(body, content_type, settings)
        fields = _merge_options(fields, form)
    elif media_type == "application/json":
        clip, frames = None, []
        source, form = _parse_json(body)
        fields = _merge_options(fields, form)
    elif media_type.startswith("video/") or media_type == "application/octet-stream":
        clip, frames = Part(body, media_type, _display_name(headers, "clip")), []
    elif media_type.startswith("image/"):
        clip, frames = None, [Part(body, media_type, _display_name(headers, "frame"))]
    elif not media_type:
        raise unsupported("missing_content_type",
                          "Send the clip as multipart/form-data (curl -F clip=@door.mp4), or a raw body with a "
                          "Content-Type of video/* or image/*.")
    else:
        raise unsupported("unsupported_media_type",
                          f"Content-Type {media_type!r} is not accepted: use multipart/form-data, video/*, image/* "
                          "or application/json with an s3_key or a movie_url.")

    if clip is None and not frames and source is None:
        raise bad_request("missing_part", "The form has no 'clip' part and no 'frame' parts: send one clip "
                                          "(-F clip=@door.mp4) or one or more frames (-F frame=@1.jpg -F frame=@2.jpg).")
    if clip is not None and frames:
        raise bad_request("mixed_parts", "Send either one 'clip' or 'frame' parts, not both.")
    if source is None and not any(p.data for p in ([clip] if clip else frames)):
        raise bad_request("empty_part", "The uploaded file is empty.")
    if len(frames) > settings.max_frames:
        raise too_large(f"{len(frames)} frames were sent; at most {settings.max_frames} are accepted per request.")

    if "format" not in fields and "application/json" in headers.get("accept").split(",", 1)[0]:
        fields["format"] = "json"
    options = Options.parse(fields)
    if options.timestamps is not None and len(options.timestamps) != len(frames):
        raise bad_request("bad_option", f"'timestamps' lists {len(options.timestamps)} times for {len(frames)} frames.")
    return Upload(options=options, clip=clip, frames=tuple(frames), source=source)


def _merge_options(query: dict, form: dict) -> dict:
    """Query and body options together; the same option in both is refused rather than one winning."""
    for name in query.keys() & form.keys():
        raise bad_request("bad_option", f"Option {name!r} is given both in the query string and in the body.")
    return {**query, **form}


def _body_bytes(event: Mapping, settings: Settings) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) > settings.max_upload_bytes * 4 // 3 + 4:
            raise _too_large_upload(settings)
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("bad_base64", "The request body is marked base64 but is not valid base64.") from None
    else:
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if not data:
        raise bad_request("empty_body", "The request body is empty: send a clip or frames.")
    if len(data) > settings.max_upload_bytes:
        raise _too_large_upload(settings)
    return data


def _too_large_upload(settings: Settings) -> ApiError:
    return too_large(f"The upload is larger than {settings.max_upload_bytes / 1e6:.1f} MB, the most that fits through "
                     "API Gateway into Lambda. Upload the clip to S3 first (POST /uploads) and send its key.")


def _parse_multipart(body: bytes, content_type: str,
                     settings: Settings) -> tuple[Part | None, list[Part], dict[str, str]]:
    boundary = _param(content_type, "content-type", "boundary")
    if not boundary:
        raise bad_request("bad_multipart", "The multipart Content-Type has no boundary parameter.")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    if delimiter + b"--" not in body[-len(delimiter) - 64:]:
        raise bad_request("bad_multipart", "The multipart body does not end with its closing boundary: the upload "
                                           "is truncated, or the boundary does not match the Content-Type.")
    # Count before decoding: thousands of tiny parts would cost seconds of CPU to parse, then be refused.
    if body.count(delimiter) > settings.max_frames + len(OPTION_SPECS) + 2:
        raise too_large(f"The form has too many parts: at most {settings.max_frames} frames are accepted per request.")
    from requests_toolbelt.multipart.decoder import MultipartDecoder  # pulls in requests: multipart requests only

    try:
        parts = MultipartDecoder(body, content_type).parts
    except Exception:  # the decoder raises several types on malformed input; all mean the same to us
        raise bad_request("bad_multipart", "The multipart body could not be parsed: each part needs its headers, "
                                           "a blank line, then its content.") from None

    clip, frames, form = None, [], {}
    for part in parts:
        disposition = _header(part, b"content-disposition")
        name = _param(disposition, "content-disposition", "name")
        filename = _param(disposition, "content-disposition", "filename")
        if not name:
            raise bad_request("bad_multipart", "A multipart part has no name in its Content-Disposition.")
        if name == "clip":
            if clip is not None:
                raise bad_request("mixed_parts", "Send one 'clip' part per request.")
            clip = Part(part.content, _header(part, b"content-type").lower(), _clean_name(filename, "clip"))
        elif name == "frame":
            frames.append(Part(part.content, _header(part, b"content-type").lower(),
                               _clean_name(filename, f"frame {len(frames) + 1}")))
        elif filename is not None:
            raise bad_request("unexpected_file", f"Unexpected file part {name!r}: files go in 'clip' or 'frame' parts.")
        else:
            if name in form:
                raise bad_request("bad_option", f"Option {name!r} is given more than once.")
            try:
                form[name] = part.content.decode("utf-8")
            except UnicodeDecodeError:
                raise bad_request("bad_option", f"Option {name!r} is not UTF-8 text.") from None
    return clip, frames, form


def _parse_json(body: bytes) -> tuple[dict, dict[str, str]]:
    """``{"s3_key": ...}`` or ``{"movie_url": ...}``, plus options as the other members."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("bad_json", "The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise bad_request("bad_json", "The JSON body must be an object, e.g. {\"s3_key\": \"uploads/...\"}.")
    named = [name for name in SOURCE_NAMES if name in document]
    if len(named) != 1 or not isinstance(document[named[0]], str) or not document[named[0]].strip():
        raise bad_request("missing_source", "The JSON body needs exactly one of \"s3_key\" (from POST /uploads) "
                                            "or \"movie_url\" (an http or https URL), as a string.")
    if named[0] == "s3_key":
        check_upload_key(document["s3_key"])
    source = {named[0]: document.pop(named[0]).strip()}
    options = {}
    for name, value in document.items():
        if isinstance(value, dict) or value is None:
            raise bad_request("bad_option", f"Option {name!r} must be a string, a number, a boolean or a list.")
        if isinstance(value, bool):  # {"timeline": true}; a boolean where a number belongs is refused by Options
            value = "true" if value else "false"
        options[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return source, options


def _header(part, name: bytes) -> str:
    value = part.headers.get(name, b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _param(header_value: str, header_name: str, param: str) -> str | None:
    """A parameter of a structured header, unquoted the way RFC 2231 and browsers quote it."""
    if not header_value:
        return None
    message = email.message.Message()
    message[header_name] = header_value
    value = message.get_param(param, header=header_name)
    if isinstance(value, tuple):  # RFC 2231 encoded (filename*=UTF-8''...)
        value = email.utils.collapse_rfc2231_value(value)
    return None if value is None else str(value)


def _display_name(headers: Headers, default: str) -> str:
    return _clean_name(_param(headers.get("content-disposition"), "content-disposition", "filename"), default)


def _clean_name(filename: str | None, default: str) -> str:
    """The last path component, without control characters, at most 80 characters: only ever shown."""
    if not filename:
        return default
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:80] or default
