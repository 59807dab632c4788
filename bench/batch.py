"""`vimo analyze FOLDER` on a folder of camera clips, with 1 worker and with 2 (or --workers ...).

Usage::

    nice .venv/bin/python bench/batch.py
    nice .venv/bin/python bench/batch.py --workers 1 2 4

The folder holds 10 clips of 60 s, 640x360 H.264 at 25 fps: a textured scene that a dark square
crosses once (at a different time in each), half with a keyframe a second (as cameras record), half
with the encoder's long default GOP (decoded in full). They are rendered once into
``bench/out/batch/``. Each run is the command a user types (``vimo analyze DIR --json -j N``), timed
from start to exit, process start-up included; the events must be the same whatever the number of
workers. Also printed: the CPU seconds each run took (all its processes), and the 1-minute load
average before it: on a shared machine, other work's share of the cores caps the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conftest import write_square_clip  # noqa: E402

FOLDER = ROOT / "bench" / "out" / "batch"
CLIPS, SECONDS = 10, 60.0


def render() -> list[Path]:
    FOLDER.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(CLIPS):
        path = FOLDER / f"cam-{i:02d}.mp4"
        if not path.exists():
            start = 5.0 + i * 5
            write_square_clip(path.with_suffix(".tmp.mp4"), seconds=SECONDS, moving=((start, start + 4.0),),
                              size=(640, 360), gop=25 if i % 2 == 0 else None)
            path.with_suffix(".tmp.mp4").rename(path)
        paths.append(path)
    return paths


def _children_cpu() -> float:
    """User + system seconds of the runs so far (and of their pool's processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    render()
    vimo = str(Path(sys.executable).with_name("vimo"))
    print(f"{CLIPS} clips of {SECONDS:g} s, 640x360 H.264 in {FOLDER.relative_to(ROOT)}")
    print(f"{'workers':>7} {'wall s':>7} {'speed-up':>8} {'video s/s':>9} {'CPU s':>6} {'events':>6} {'load':>5}")
    baseline = reference = None
    for workers in args.workers:
        load = os.getloadavg()[0]
        cpu = _children_cpu()
        started = time.perf_counter()
        run = subprocess.run([vimo, "analyze", str(FOLDER), "--json", "-j", str(workers)], capture_output=True,
                             text=True, check=True)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu
        lines = sorted((json.loads(text) for text in run.stdout.splitlines()), key=lambda line: line["file"])
        events = [[(e["start"], e["end"]) for e in line["events"]] for line in lines]
        baseline = baseline or wall
        reference = reference or events
        same = "" if events == reference else "  (events differ from the first run's!)"
        print(f"{workers:7d} {wall:7.1f} {baseline / wall:8.2f} {CLIPS * SECONDS / wall:9.1f} {cpu:6.1f} "
              f"{sum(map(len, events)):6d} {load:5.1f}{same}", flush=True)


if __name__ == "__main__":
    main()
