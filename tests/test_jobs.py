"""Jobs against the local gateway: POST /jobs answers at once, the work runs in the background of
the server, GET /jobs/{id} shows it going, and its state outlives a restart of the server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from conftest import body_json, gateway_event, invoke, serving, serving_files, write_square_clip
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from vimo import gateway, jobs

# The clip's truth: a dark square crosses the view twice (seconds).
CROSSINGS = ((10.0, 14.0), (30.0, 34.0))


def write_grainy_clip(path: Path, seconds: float = 48.0, rate: int = 10, size=(480, 270), moving=CROSSINGS,
                      crf: int = 24) -> Path:
    """A textured scene with sensor grain in every frame (which is what makes it big: 16 MB for 48 s
    at crf 24), crossed by a dark square during each ``(start, end)`` of ``moving``."""
    return write_square_clip(path, seconds, moving, size=size, rate=rate, grain=10.0,
                             options={"preset": "ultrafast", "crf": str(crf)})


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    return write_grainy_clip(tmp_path_factory.mktemp("jobs") / "yard.mp4")


def wait_for(url: str, timeout: float = 120.0, seen: list | None = None, **kwargs) -> dict:
    """GET a job until it ends; every answer on the way is appended to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(url, timeout=10, **kwargs)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if seen is not None:
            seen.append(job)
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def segmented(monkeypatch):
    """Long enough to be cut: 48 s in 8 s segments on two processes, so progress moves in steps."""
    monkeypatch.setenv("FANOUT_THRESHOLD", "20")
    monkeypatch.setenv("SEGMENT_SECONDS", "8")
    monkeypatch.setenv("WORKERS", "2")


def test_a_16_mb_upload_runs_as_a_job_with_progress(s3_bucket, segmented, big_clip):
    assert big_clip.stat().st_size > 16 * 1024 ** 2
    with serving(gateway.Gateway(("127.0.0.1", 0), workers=2)) as api:
        key = upload(api, big_clip.read_bytes())
        started = time.monotonic()
        answer = requests.post(f"{api}/jobs", json={"s3_key": key, "step": 0.5}, timeout=10)
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert accepted["status"] == "queued" and jobs.JOB_ID.fullmatch(accepted["id"])
        assert accepted["url"] == f"{api}/jobs/{accepted['id']}" == answer.headers["Location"]
        assert time.monotonic() - started < 5  # queued, not analysed, before answering

        seen: list[dict] = []
        job = wait_for(accepted["url"], seen=seen)

    assert job["status"] == "done", job
    assert [s["status"] for s in seen][-1] == "done"
    statuses = [s["status"] for s in seen]
    assert statuses.index("running") < statuses.index("done")
    moving = [s["progress"] for s in seen if s["status"] == "running" and 0 < s["progress"] < 1]
    assert moving, "no progress was seen between 0 and 1"
    assert all(a <= b for a, b in zip(moving, moving[1:]))  # progress never goes back
    assert job["progress"] == 1 and "error" not in job
    assert job["created_at"].endswith("Z") and job["created_at"] <= job["updated_at"]

    result = job["result"]
    events = [(e["start"], e["end"]) for e in result["events"]]
    assert len(events) == 2, events
    for (start, end), (true_start, true_end) in zip(events, CROSSINGS):
        assert abs(start - true_start) <= 0.5 and abs(end - true_end) <= 0.5
    assert result["complete"] is True and result["video"]["duration"] == pytest.approx(48, abs=0.2)
    # The same events as one pass over the clip.
    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings

    single = analyze_clip(big_clip, Options(), Settings())
    assert events == [(e.start, e.end) for e in single.events]

    montage = requests.get(result["montage_url"], timeout=10)
    assert montage.status_code == 200 and montage.content[:3] == b"\xff\xd8\xff"
    # The record, the montage and nothing else are left: the job's stored inputs are gone.
    keys = {o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="jobs/")
            .get("Contents", [])}
    assert keys == {f"jobs/{job['id']}.json", f"jobs/{job['id']}/montage.jpg"}


def test_a_clip_in_the_request_runs_as_a_job_kept_in_files(square_clip, data_dir):
    with serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
        with square_clip.open("rb") as clip:
            answer = requests.post(f"{api}/jobs", files={"clip": ("door.mp4", clip, "video/mp4")},
                                   data={"tile_width": "160"}, timeout=10)
        assert answer.status_code == 202, answer.text
        job = wait_for(answer.json()["url"])
        assert job["status"] == "done", job
        [event] = job["result"]["events"]
        assert 1.5 <= event["start"] <= 2.5 and 3.5 <= event["end"] <= 4.6
        # Without S3 the montage is served by the API itself.
        assert job["result"]["montage_url"] == f"{api}/jobs/{job['id']}/montage.jpg"
        montage = requests.get(job["result"]["montage_url"], timeout=10)
        assert montage.status_code == 200 and montage.headers["Content-Type"] == "image/jpeg"
        assert montage.content[:3] == b"\xff\xd8\xff"
    record = json.loads((data_dir / "jobs" / f"{job['id']}.json").read_text())
    assert record["status"] == "done" and record["request"]["options"]["tile_width"] == 160
    assert not (data_dir / "jobs" / job["id"] / "clip").exists()  # the input is removed once analysed


def upload(api: str, data: bytes) -> str:
    """The clip sent to S3 the way POST /uploads says; its s3_key."""
    presigned = requests.post(f"{api}/uploads", timeout=10).json()
    stored = requests.post(presigned["url"], data=presigned["fields"],
                           files={presigned["file_field"]: ("clip.mp4", data, "video/mp4")}, timeout=60)
    assert stored.status_code in (200, 204), stored.text
    return presigned["key"]


def test_a_corrupt_clip_ends_failed_with_a_clear_error(s3_bucket, square_clip):
    data = bytearray(square_clip.read_bytes())
    data[len(data) // 8:] = bytes(len(data) - len(data) // 8)  # all but the start zeroed
    with serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
        answer = requests.post(f"{api}/jobs", json={"s3_key": upload(api, bytes(data))}, timeout=10)
        assert answer.status_code == 202, answer.text
        job = wait_for(answer.json()["url"])
        assert job["status"] == "failed" and "result" not in job
        assert job["error"]["code"] == "not_a_video", job
        assert "decoded" in job["error"]["message"]
        montage = requests.get(f"{answer.json()['url']}/montage.jpg", timeout=10)
        assert montage.status_code == 409 and montage.json()["error"]["code"] == "no_montage"
        # The same clip in the request is refused at once, as /motion refuses it.
        refused = requests.post(f"{api}/jobs", data=bytes(data), headers={"Content-Type": "video/mp4"}, timeout=10)
        assert refused.status_code == 415 and refused.json()["error"]["code"] == "not_a_video"


def test_a_restart_picks_up_queued_and_interrupted_jobs(square_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    # Two jobs queued while no server runs (the handler alone, as a server that stopped would
    # leave them); the second was running when its server died.
    event = gateway_event(square_clip.read_bytes(), "video/mp4", path="/jobs")
    first, second = (body_json(invoke(event))["id"] for _ in range(2))
    store = jobs.FileStore(tmp_path)
    [_, marker] = store.list(jobs.QUEUED)
    store.put(jobs.RUNNING + marker[len(jobs.QUEUED):], b"")
    store.delete(marker)
    interrupted = jobs.load(second, None, store)
    interrupted.status, interrupted.progress = "running", 0.4
    jobs.save(interrupted, store)
    assert jobs.load(first, None, store).status == "queued"

    with serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
        done = [wait_for(f"{api}/jobs/{job_id}") for job_id in (first, second)]
    assert [job["status"] for job in done] == ["done", "done"]
    assert store.list(jobs.QUEUED) == [] and store.list(jobs.RUNNING) == []


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, by /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_job_stopped_with_its_server_runs_again_at_the_next_start(big_clip, segmented, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIMO_ALLOW_LOOPBACK_URLS", "1")
    with serving_files(big_clip.parent) as files:
        server = gateway.Gateway(("127.0.0.1", 0), workers=1)
        with serving(server) as api:
            answer = requests.post(f"{api}/jobs", json={"movie_url": f"{files}/{big_clip.name}"}, timeout=10)
            assert answer.status_code == 202
            job_id = answer.json()["id"]
            deadline = time.monotonic() + 60
            while jobs.load(job_id, None, jobs.FileStore(tmp_path)).status != "running" \
                    or not (segments := [pid for _, job in list(server.jobs.running.values()) for pid in children(job.pid)]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # ``segments``: the processes its segments run on
        # The server stopped in the middle of the job: the record still says running, and nothing of
        # the job is left running (its segments' processes would wait for work forever).
        assert jobs.load(job_id, None, jobs.FileStore(tmp_path)).status == "running"
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in segments) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in segments if Path(f"/proc/{pid}").exists()], segments
        with serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
            job = wait_for(f"{api}/jobs/{job_id}")
    assert job["status"] == "done" and len(job["result"]["events"]) == 2


def test_unknown_jobs_are_404_and_other_methods_405():
    missing = invoke(gateway_event(method="GET", path=f"/jobs/{'0' * 32}"))
    assert missing["statusCode"] == 404 and body_json(missing)["error"]["code"] == "no_such_job"
    malformed = invoke(gateway_event(method="GET", path="/jobs/..%2F..%2Fetc"))
    assert malformed["statusCode"] == 404 and body_json(malformed)["error"]["code"] == "no_such_job"
    wrong = invoke(gateway_event(method="DELETE", path=f"/jobs/{'0' * 32}"))
    assert wrong["statusCode"] == 405 and body_json(wrong)["error"]["code"] == "method_not_allowed"
    bad = invoke(gateway_event(json.dumps({"s3_key": "uploads/x"}), "application/json", path="/jobs"))
    assert bad["statusCode"] == 400 and body_json(bad)["error"]["code"] == "bad_s3_key"
