"""Montages in S3: a fresh private object per request, handed out as a presigned GET URL.

The original project wrote every montage to one world-readable ``montage.jpg``, so concurrent users
got each other's pictures. Here each montage gets its own unguessable key in a private bucket, and
only the holder of the time-limited URL can read it. boto3 honours ``AWS_ENDPOINT_URL``, so the same
code talks to AWS, to moto's server in the tests, or to any S3-compatible store.
"""

from __future__ import annotations

import datetime
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import Settings
from .errors import ApiError

MONTAGE_PREFIX = "montages/"


def new_key(prefix: str = MONTAGE_PREFIX, suffix: str = ".jpg") -> str:
    """A unique, unguessable key, grouped by day so that lifecycle and listing stay cheap."""
    return f"{prefix}{datetime.datetime.now(datetime.timezone.utc):%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


def client():
    return boto3.client("s3", config=Config(signature_version="s3v4", retries={"mode": "standard"}))


def store_montage(jpeg: bytes, settings: Settings) -> str:
    """Store the JPEG under a new key and return a presigned GET URL valid for ``url_expiry`` seconds."""
    if not settings.results_bucket:
        raise ApiError(501, "no_results_bucket",
                       "This montage has to be delivered through S3 (delivery=s3, or larger than the 6 MB response "
                       "limit), but no results bucket is configured: set RESULTS_BUCKET (and AWS_ENDPOINT_URL for a "
                       "local S3) before starting the server.")
    s3 = client()
    key = new_key()
    try:
        s3.put_object(Bucket=settings.results_bucket, Key=key, Body=jpeg, ContentType="image/jpeg")
        return s3.generate_presigned_url("get_object", Params={"Bucket": settings.results_bucket, "Key": key},
                                         ExpiresIn=settings.url_expiry)
    except (BotoCoreError, ClientError) as exc:
        raise ApiError(502, "storage_failed", f"The montage could not be stored in S3: {exc}") from None
