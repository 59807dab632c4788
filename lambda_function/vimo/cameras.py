"""Cameras that upload on their own: each object created under ``incoming/`` becomes a job.

A camera or NVR drops a clip into the bucket every few minutes; S3 tells the function
(``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", ...}]}``) and each clip
is analysed as a job whose results land beside it under ``results/``: ``results/<key>.json`` (the
/motion?format=json answer and the job's id) and ``results/<key>.jpg`` (the montage). Nothing is
written under ``incoming/``, so no result ever triggers another job.

S3 delivers notifications at least once, and Lambda retries a failed asynchronous invocation: the
same object may arrive twice. The job's id is derived from the object (bucket, key and ETag, see
``jobs.id_for_object``) and its record is created with a conditional write (``If-None-Match: *``):
of two deliveries, only one creates the job and starts it; the other finds it there and stops.
A new upload under the same key has another ETag, so it is a new job.
"""

from __future__ import annotations

import logging
import posixpath
from urllib.parse import unquote_plus

from . import jobs
from .config import Options, Settings

INCOMING = "incoming/"
RESULTS = "results/"

log = logging.getLogger("vimo.cameras")


def is_s3_event(event: dict) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def handle(event: dict, settings: Settings | None = None) -> dict:
    """Start a job for each new object under ``incoming/``; ``{"started": [ids], "duplicates": [ids],
    "ignored": [keys]}``."""
    from .runners import start
    from .segments import options_to_dict

    settings = settings or Settings.from_env()
    where = jobs.store(settings)
    outcome: dict = {"started": [], "duplicates": [], "ignored": []}
    for record in event["Records"]:
        bucket = record.get("s3", {}).get("bucket", {}).get("name", "")
        item = record.get("s3", {}).get("object", {})
        key = unquote_plus(item.get("key", ""))  # S3 sends keys URL-encoded, spaces as '+'
        if not record.get("eventName", "").startswith("ObjectCreated") or not key.startswith(INCOMING) \
                or bucket != settings.results_bucket or key.endswith("/"):
            outcome["ignored"].append(key)
            continue
        etag = item.get("eTag") or item.get("etag") or _etag(where, key)
        job = jobs.Job(jobs.id_for_object(bucket, key, etag))
        job.request = {"name": posixpath.basename(key), "options": options_to_dict(Options(format="json")),
                       "source": {"object": key}, "output": f"{RESULTS}{key}"}
        if jobs.create(job, where):
            start(job, settings, where)
            outcome["started"].append(job.id)
            log.info("camera upload %s: job %s", key, job.id)
        else:
            outcome["duplicates"].append(job.id)
            log.info("camera upload %s: job %s exists already (a repeated notification)", key, job.id)
    return outcome


def _etag(where, key: str) -> str:
    """The object's ETag when the notification left it out."""
    head = where.s3.head_object(Bucket=where.bucket, Key=key)
    return head["ETag"]
