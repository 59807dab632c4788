"""Montages in S3: a fresh private object per request, handed out as a presigned GET URL.

The original project wrote every montage to one world-readable ``montage.jpg``, so concurrent users
got each other's pictures. Here each montage gets its own unguessable key in a private bucket, and
only the holder of the time-limited URL can read it. boto3 honours ``AWS_ENDPOINT_URL`` (and
``AWS_ENDPOINT_URL_S3``), so the same code talks to AWS, to moto's server in the tests, or to any
S3-compatible store.

On AWS the URL is signed with the function's role credentials (SigV4, ``X-Amz-Expires`` seconds) and
names the bucket's regional endpoint, ``<bucket>.s3.<region>.amazonaws.com``: the global endpoint
would answer a bucket created in another region less than a day ago with a redirect that breaks the
signature. A presigned URL also stops working when the temporary credentials that signed it expire,
possibly before URL_EXPIRY, which is why the template caps URL_EXPIRY at a few hours.
"""

from __future__ import annotations

import datetime
import functools
import os
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import Settings
from .errors import ApiError, storage_failed

MONTAGE_PREFIX = "montages/"
JPEG = "image/jpeg"


def new_key(prefix: str = MONTAGE_PREFIX, suffix: str = ".jpg") -> str:
    """A unique, unguessable key (122 random bits), grouped by day so that listing stays cheap."""
    return f"{prefix}{datetime.datetime.now(datetime.timezone.utc):%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


def client():
    """The S3 client for the current environment (made once per endpoint and region, then reused)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _client(endpoint, region)


@functools.lru_cache(maxsize=8)
def _client(endpoint: str | None, region: str | None):
    # Path-style for custom endpoints (moto, MinIO, LocalStack: no wildcard DNS needed); on AWS,
    # virtual-hosted style on the regional endpoint, so that a presigned URL never meets a redirect.
    s3 = {"addressing_style": "path"} if endpoint else {"addressing_style": "virtual",
                                                         "us_east_1_regional_endpoint": "regional"}
    config = Config(signature_version="s3v4", s3=s3, retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5, read_timeout=20)
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint, config=config)


def results_bucket(settings: Settings, why: str) -> str:
    """The configured bucket; a 501 saying ``why`` it was needed if there is none."""
    if not settings.results_bucket:
        raise ApiError(501, "no_results_bucket", f"{why}, but no results bucket is configured: set RESULTS_BUCKET "
                                                 "(and AWS_ENDPOINT_URL for a local S3) before starting the server.")
    return settings.results_bucket


def store_montage(jpeg: bytes, settings: Settings) -> str:
    """Store the JPEG under a new key and return a presigned GET URL valid for ``url_expiry`` seconds."""
    bucket = results_bucket(settings, "This montage has to be delivered through S3 (delivery=s3, or larger than "
                                      "the 6 MB response limit)")
    s3 = client()
    key = new_key()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=jpeg, ContentType=JPEG,
                      CacheControl=f"private, max-age={settings.url_expiry}")
        return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=settings.url_expiry)
    except (BotoCoreError, ClientError) as exc:
        raise storage_failed(f"The montage could not be stored in S3: {exc}") from None
