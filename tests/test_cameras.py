"""Cameras that upload: an object created under incoming/ becomes one job, however many times S3
tells the function about it, and its results land under results/, never under incoming/."""

from __future__ import annotations

import json
import time

import pytest

from conftest import invoke, serving
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from vimo import gateway, jobs


def notification(bucket: str, key: str, etag: str, name: str = "ObjectCreated:Put") -> dict:
    """What S3 sends the function for a new object (the key URL-encoded, as S3 sends it)."""
    from urllib.parse import quote_plus

    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-12-03T07:00:00.000Z",
        "eventName": name, "userIdentity": {"principalId": "AWS:CAMERA"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "incoming-clips",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "X"}, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 1, "eTag": etag, "sequencer": "0065"}}}]}


def keys(bucket, prefix: str) -> set[str]:
    return {o["Key"] for o in bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=prefix).get("Contents", [])}


def wait_for_key(bucket, key: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while key not in keys(bucket, key):
        assert time.monotonic() < deadline, f"{key} never appeared"
        time.sleep(0.1)


def test_a_notification_delivered_twice_makes_one_job_and_one_result(s3_bucket, square_clip):
    key = "incoming/front door/2026-12-03 07.00.mp4"
    etag = s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=square_clip.read_bytes())["ETag"]
    event = notification(s3_bucket.name, key, etag)

    first, second = invoke(event), invoke(event)  # S3 delivers at least once: here, twice
    [job_id] = first["started"]
    assert first["duplicates"] == [] and second == {"started": [], "duplicates": [job_id], "ignored": []}
    assert job_id == jobs.id_for_object(s3_bucket.name, key, etag)

    with serving(gateway.Gateway(("127.0.0.1", 0), workers=1)):
        wait_for_key(s3_bucket, f"results/{key}.json")
        deadline = time.monotonic() + 30
        while keys(s3_bucket, "jobs/queued/") | keys(s3_bucket, "jobs/running/"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        invoke(event)  # and a third time after it ran: still nothing new

    assert keys(s3_bucket, "results/") == {f"results/{key}.json", f"results/{key}.jpg"}
    assert keys(s3_bucket, "incoming/") == {key}  # nothing written beside the clip
    assert {k for k in keys(s3_bucket, "jobs/") if k.endswith(".json")} == {f"jobs/{job_id}.json"}
    result = json.loads(s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"results/{key}.json")["Body"].read())
    assert result["job"] == job_id
    [moved] = result["events"]
    assert 1.5 <= moved["start"] <= 2.5 and 3.5 <= moved["end"] <= 4.6
    montage = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"results/{key}.jpg")["Body"].read()
    assert montage[:3] == b"\xff\xd8\xff"
    record = jobs.load(job_id, None, jobs.S3Store(s3_bucket.name, None))
    assert record.status == "done" and record.result["events"] == result["events"]


def test_a_new_upload_under_the_same_key_is_a_new_job(s3_bucket, square_clip):
    key = "incoming/yard/clip.mp4"
    first = s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=square_clip.read_bytes())["ETag"]
    second = s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=square_clip.read_bytes() + b"\0")["ETag"]
    assert first != second
    one, two = invoke(notification(s3_bucket.name, key, first)), invoke(notification(s3_bucket.name, key, second))
    assert one["started"] and two["started"] and one["started"] != two["started"]


@pytest.mark.parametrize("key, name", [
    ("results/incoming/x.mp4.json", "ObjectCreated:Put"),  # a result never starts a job
    ("uploads/2026/12/03/" + "0" * 32, "ObjectCreated:Post"),  # nor a clip sent through POST /uploads
    ("incoming/gone.mp4", "ObjectRemoved:Delete"),
    ("incoming/folder/", "ObjectCreated:Put"),
])
def test_other_objects_and_events_are_ignored(s3_bucket, key, name):
    outcome = invoke(notification(s3_bucket.name, key, '"abc"', name))
    assert outcome == {"started": [], "duplicates": [], "ignored": [key]}
    assert keys(s3_bucket, "jobs/") == set()


def test_another_buckets_objects_are_ignored(s3_bucket):
    outcome = invoke(notification("someone-elses-bucket", "incoming/a.mp4", '"abc"'))
    assert outcome["ignored"] == ["incoming/a.mp4"] and keys(s3_bucket, "jobs/") == set()
