"""Jobs on AWS, offline: POST /jobs through the handler starts an execution of template.yaml's
state machine, which moto's interpreter runs, invoking the real handler for each state."""

from __future__ import annotations

import json
import time

import pytest

from conftest import body_json, gateway_event, invoke
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from sfn import step_functions  # noqa: F401  (fixture)
from test_jobs import CROSSINGS, write_grainy_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_grainy_clip(tmp_path_factory.mktemp("sfn") / "yard.mp4", crf=30)


def json_event(document: dict, **kwargs) -> dict:
    return gateway_event(json.dumps(document), "application/json", **kwargs)


def uploaded(data: bytes) -> str:
    import requests

    presigned = body_json(invoke(gateway_event(None, path="/uploads")))
    stored = requests.post(presigned["url"], data=presigned["fields"],
                           files={presigned["file_field"]: ("clip.mp4", data, "video/mp4")}, timeout=60)
    assert stored.status_code in (200, 204), stored.text
    return presigned["key"]


def follow(job_id: str, timeout: float = 120) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        answer = invoke(gateway_event(method="GET", path=f"/jobs/{job_id}"))
        assert answer["statusCode"] == 200, answer["body"]
        seen.append(body_json(answer))
        if seen[-1]["status"] in ("done", "failed"):
            return seen
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.1)


def test_a_job_runs_on_the_state_machine_and_a_crashed_segment_is_retried(step_functions, clip, monkeypatch):
    monkeypatch.setenv("FANOUT_THRESHOLD", "20")
    monkeypatch.setenv("SEGMENT_SECONDS", "8")
    key = uploaded(clip.read_bytes())
    step_functions.fail_once("segment", 2)

    answer = invoke(json_event({"s3_key": key}, path="/jobs"))
    assert answer["statusCode"] == 202, answer["body"]
    job_id = body_json(answer)["id"]
    seen = follow(job_id)
    job = seen[-1]
    assert job["status"] == "done", job

    # The execution is the job's, and it succeeded.
    sfn = step_functions.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=step_functions.arn)["executions"]
    assert execution["name"] == job_id and execution["status"] == "SUCCEEDED"
    steps = [call["vimo_job"]["step"] for call in step_functions.calls]
    segments = sorted(call["vimo_job"]["segment"]["index"] for call in step_functions.calls
                      if call["vimo_job"]["step"] == "segment")
    assert steps[0] == "plan" and steps[-2:] == ["merge", "notify"]
    assert segments == [0, 1, 2, 2, 3, 4, 5]  # segment 2 crashed once and ran again; nothing else did

    events = [(e["start"], e["end"]) for e in job["result"]["events"]]
    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings

    assert events == [(e.start, e.end) for e in analyze_clip(clip, Options(), Settings()).events]
    assert len(events) == len(CROSSINGS)
    assert any(0 < s["progress"] < 1 for s in seen if s["status"] == "running")
    import requests

    assert requests.get(job["result"]["montage_url"], timeout=10).content[:3] == b"\xff\xd8\xff"


def test_a_corrupt_clip_fails_the_job_on_the_state_machine(step_functions, square_clip):
    data = bytearray(square_clip.read_bytes())
    data[len(data) // 8:] = bytes(len(data) - len(data) // 8)
    answer = invoke(json_event({"s3_key": uploaded(bytes(data))}, path="/jobs"))
    job = follow(body_json(answer)["id"])[-1]
    assert job["status"] == "failed" and job["error"]["code"] == "not_a_video", job


def test_a_job_whose_execution_cannot_start_is_refused_and_recorded_failed(s3_bucket, square_clip, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:gone")
    answer = invoke(json_event({"s3_key": uploaded(square_clip.read_bytes())}, path="/jobs"))
    assert answer["statusCode"] == 502 and body_json(answer)["error"]["code"] == "job_not_started", answer["body"]
    [record] = [o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="jobs/")["Contents"]
                if o["Key"].endswith(".json")]
    job = body_json(invoke(gateway_event(method="GET", path=f"/{record[:-5]}")))
    assert job["status"] == "failed" and job["error"]["code"] == "job_not_started"


def test_a_camera_upload_notified_twice_runs_once_on_the_state_machine(step_functions, s3_bucket, square_clip):
    from test_cameras import keys, notification, wait_for_key

    key = "incoming/porch/clip.mp4"
    etag = s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=square_clip.read_bytes())["ETag"]
    first, second = invoke(notification(s3_bucket.name, key, etag)), invoke(notification(s3_bucket.name, key, etag))
    assert first["started"] and second["duplicates"] == first["started"]
    wait_for_key(s3_bucket, f"results/{key}.jpg")
    job = follow(first["started"][0])[-1]
    assert job["status"] == "done" and len(job["result"]["events"]) == 1
    executions = step_functions.client("stepfunctions").list_executions(stateMachineArn=step_functions.arn)
    assert [e["name"] for e in executions["executions"]] == first["started"]  # one execution, the job's
    assert keys(s3_bucket, "results/") == {f"results/{key}.json", f"results/{key}.jpg"}
