"""Result -> what goes back to the caller: the JPEG itself, JSON, or a presigned S3 link.

Lambda cannot return more than 6 MB, and API Gateway base64-encodes binary answers, so a JPEG over
about 4.4 MB cannot be returned inline: it is stored in the results bucket instead and the caller
gets JSON with a presigned URL, whatever format they asked for.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response

from .analysis import Result
from .config import LAMBDA_PAYLOAD_LIMIT, Options, Settings
from .errors import ApiError
from .montage import contact_sheet

# Room left in Lambda's response for the headers and JSON around a base64 body.
INLINE_LIMIT = (LAMBDA_PAYLOAD_LIMIT - 16 * 1024) * 3 // 4


def respond(result: Result, name: str, options: Options, settings: Settings) -> Response:
    """The HTTP response for a finished analysis of the media called ``name``; the montage is
    rendered only when it is sent or stored."""
    headers = {"X-Motion-Events": str(len(result.events))}
    delivery = options.delivery or settings.default_delivery
    if options.format == "json" and delivery != "s3":
        return json_response(200, result.to_dict(), headers)
    montage = contact_sheet(result.events, result.video, name, options)
    if delivery == "s3" or len(montage) > INLINE_LIMIT:
        from .storage import store_montage  # boto3 only loads for requests that need it

        url = store_montage(montage, settings)
        return json_response(200, {**result.to_dict(), "montage_url": url}, headers)
    return Response(status_code=200, content_type="image/jpeg", body=montage, headers=headers)


def error_response(error: ApiError, headers: dict | None = None) -> Response:
    return json_response(error.status, error.to_dict(), headers)


def json_response(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(status_code=status, content_type="application/json",
                    body=json.dumps(payload, separators=(",", ":")), headers=headers or {})
