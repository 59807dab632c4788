"""A 2-hour recording with a long GOP analysed as a job: in one pass, as a local job (segments on a
process pool, what `make run` does), and on the jobs state machine emulated offline (moto's Step
Functions interpreter running template.yaml's definition, each Lambda task the real handler).

Usage::

    nice .venv/bin/python bench/jobs.py                  # all three
    nice .venv/bin/python bench/jobs.py --skip-sfn --workers 2

The clip is 2 hours of 640x360 H.264 at 10 fps with a keyframe every 25 s (an encoder's default
long GOP: nothing to screen by keyframes, so every frame is decoded), a textured scene with sensor
noise, and boxes crossing it at known times, several across the 60 s segment boundaries. It is
rendered once into ``bench/out/`` and reused. For each way the script prints the wall time, the
segments, the workers, and whether the events equal the single pass's (exactly, and within the
sampling step). On the emulated state machine the segments run inside this one process, one
invocation at a time as far as moto's interpreter allows: its wall time shows what the
orchestration costs, not what parallel Lambdas would take. The script measures; the tests assert.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # conftest (event helpers), tests/sfn.py

from parallel import boxes_clip  # noqa: E402  (the same kind of scene as the parallel benchmark)
WIDTH, HEIGHT, FPS, SECONDS, GOP = 640, 360, 10, 2 * 3600, 250
# (start, end, y, box size): boxes crossing left to right; 598-604, 1795-1806 and 3598-3606 straddle
# 60 s segment boundaries, the others sit inside segments.
EVENTS = [(95.0, 101.0, 100, 60), (598.0, 604.0, 200, 80), (1200.0, 1203.0, 150, 40), (1795.0, 1806.0, 120, 100),
          (2500.0, 2506.0, 220, 70), (3598.0, 3606.0, 90, 90), (4333.0, 4337.0, 180, 50), (5400.0, 5412.0, 140, 110),
          (6150.0, 6154.0, 60, 60), (7100.0, 7108.0, 200, 80)]


def clip() -> Path:
    return boxes_clip(f"jobs_{SECONDS}s_{HEIGHT}p_gop{GOP}", WIDTH, HEIGHT, FPS, SECONDS, GOP, EVENTS, seed=11,
                      waves=(19.0, 13.0), crf=28)


def spans(events) -> list[tuple[float, float]]:
    return [(round(e["start"], 3), round(e["end"], 3)) if isinstance(e, dict) else (round(e.start, 3), round(e.end, 3))
            for e in events]


def compare(events, baseline, step: float) -> str:
    a, b = spans(events), spans(baseline)
    if a == b:
        return "equal"
    within = len(a) == len(b) and all(abs(x[0] - y[0]) <= step + 0.01 and abs(x[1] - y[1]) <= step + 0.01
                                      for x, y in zip(a, b))
    return "within the step" if within else f"DIFFERENT: {a}"


def local_job(path: Path, workers: int) -> tuple[float, dict, int]:
    """The job as `make run`'s job process runs it (jobs.run), its clip stored with it."""
    from vimo import jobs
    from vimo.config import Options, Settings
    from vimo.segments import options_to_dict, plan_segments, segment_length

    with tempfile.TemporaryDirectory(prefix="vimo-bench-") as data:
        os.environ.update(DATA_DIR=data, WORKERS=str(workers))
        settings = Settings.from_env()
        store = jobs.FileStore(data)
        job = jobs.Job(jobs.new_id(), request={"name": path.name, "options": options_to_dict(Options(format="json")),
                                               "source": {"stored": "clip"}})
        shutil.copy(path, _target(store, job))
        jobs.create(job, store)
        started = time.perf_counter()
        done = jobs.run(job.id, settings)
        wall = time.perf_counter() - started
    count = len(plan_segments(SECONDS, segment_length(SECONDS, workers * 3, settings.segment_seconds), 0.5))
    return wall, done.to_dict(), count


def _target(store, job) -> str:
    from vimo import jobs

    target = Path(store.location(jobs.file_key(job.id, "clip")))
    target.parent.mkdir(parents=True, exist_ok=True)
    return str(target)


def emulated_job(path: Path) -> tuple[float, dict, int, int]:
    """The job on template.yaml's state machine in moto, from POST /jobs {"s3_key"} on."""
    import boto3
    from moto.server import ThreadedMotoServer

    from conftest import body_json, gateway_event, invoke
    from sfn import emulated

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY="x",
                      AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", RESULTS_BUCKET="vimo-bench",
                      MOTO_PORT=str(port), NO_PROXY="127.0.0.1,localhost")
    os.environ.pop("WORKERS", None)
    try:
        s3 = boto3.session.Session().client("s3", endpoint_url=url)
        s3.create_bucket(Bucket="vimo-bench")
        key = f"uploads/2026/12/03/{'b' * 32}"
        s3.upload_file(str(path), "vimo-bench", key, ExtraArgs={"ContentType": "application/octet-stream"})
        with emulated(url) as machine:
            os.environ["STATE_MACHINE_ARN"] = machine.arn
            started = time.perf_counter()
            answer = invoke(gateway_event(json.dumps({"s3_key": key, "format": "json"}), "application/json",
                                          path="/jobs"))
            job_id = body_json(answer)["id"]
            while (job := body_json(invoke(gateway_event(method="GET", path=f"/jobs/{job_id}"))))["status"] not in (
                    "done", "failed"):
                time.sleep(1)
            wall = time.perf_counter() - started
            segment_spans = [(a, b) for step, a, b in machine.spans if step == "segment"]
            peak = max(sum(1 for a, b in segment_spans if a <= t < b) for t, _ in segment_spans) if segment_spans else 0
        return wall, job, len(segment_spans), peak
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-sfn", action="store_true")
    args = parser.parse_args()

    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings

    path = clip()
    options = Options(format="json")
    print(f"clip: {path.name}, {SECONDS / 3600:.0f} h {WIDTH}x{HEIGHT} @ {FPS} fps, keyframe every {GOP / FPS:g} s, "
          f"{path.stat().st_size / 1e6:.0f} MB; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"truth: {len(EVENTS)} events", flush=True)
    started = time.perf_counter()
    single = analyze_clip(path, options, Settings())
    wall = time.perf_counter() - started
    print(f"{'one pass':<28} wall {wall:7.1f} s  segments   1  workers 1 (FFmpeg frame threads)  "
          f"events {len(single.events)}  frames {single.video.frames_analyzed}", flush=True)

    wall, job, count = local_job(path, args.workers)
    print(f"{'local job (make run)':<28} wall {wall:7.1f} s  segments {count:3d}  workers {args.workers}  "
          f"status {job['status']}  events {len(job.get('result', {}).get('events', []))}  vs one pass: "
          f"{compare(job.get('result', {}).get('events', []), single.events, options.step)}", flush=True)

    if not args.skip_sfn:
        wall, job, count, peak = emulated_job(path)
        print(f"{'state machine (moto)':<28} wall {wall:7.1f} s  segments {count:3d}  workers {peak} at once (in-process)"
              f"  status {job['status']}  events {len(job.get('result', {}).get('events', []))}  vs one pass: "
              f"{compare(job.get('result', {}).get('events', []), single.events, options.step)}", flush=True)
    print("truth: " + ", ".join(f"{a:g}-{b:g}" for a, b, *_ in EVENTS))
    print("one pass: " + ", ".join(f"{a:.1f}-{b:.1f}" for a, b in spans(single.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
