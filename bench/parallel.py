"""Wall time of one long clip analysed in one pass and in segments on a local process pool.

Usage::

    nice .venv/bin/python bench/parallel.py                 # 1 worker, then 2 (default)
    nice .venv/bin/python bench/parallel.py --workers 1 2 4 --gop 1

The clip is a 10-minute 1280x720 H.264 recording at 15 fps, like a security camera's: a textured
still scene with sensor noise, and boxes that cross it at known times, a few of them across the
segment boundaries of a 2-worker run. It is rendered once into ``bench/out/`` (a few minutes,
libx264 ``veryfast``) and reused while its parameters stay the same.

For each worker count the script prints the wall time, the speed-up over the one-pass run, and
whether the events equal the one-pass run's within the sampling step (same count, start and end
each within one step), and the 1-minute load average before the run: on a shared machine, other
work's share of the cores caps the speed-up. The script measures; the tests assert.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 15, 600
# (start, end, y, box size): boxes crossing left to right. 98-104 s and 297-305 s straddle the
# boundaries of a 2-worker run (6 segments of 100 s); the others sit inside segments.
EVENTS = [(20.0, 26.0, 200, 120), (98.0, 104.0, 400, 160), (150.0, 152.5, 300, 80), (297.0, 305.0, 250, 200),
          (410.0, 418.0, 500, 100), (520.0, 523.0, 150, 140), (577.0, 590.0, 350, 110)]


def boxes_clip(name: str, width: int, height: int, fps: int, seconds: int, gop: int, events, seed: int,
               waves: tuple[float, float], crf: int) -> Path:
    """``bench/out/<name>.mp4``, rendered once (and again when any parameter changes): a textured still
    scene (a ``waves`` sine pattern and grain from ``seed``) with sensor noise, and a box crossing it
    left to right for each ``(start, end, y, size)`` of ``events``; libx264 ``veryfast`` at ``crf``,
    a keyframe every ``gop`` frames."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.mp4"
    key = json.dumps({"events": events, "size": [width, height, fps, seconds], "gop": gop, "seed": seed,
                      "waves": waves, "crf": crf, "v": 2})
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists() and sidecar.read_text() == key:
        return path
    print(f"rendering {path.name} (once; a few minutes) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    texture = (np.sin(x / waves[0]) * np.cos(y / waves[1]) * 25 + rng.normal(0, 12, (height, width))).astype(np.float32)
    background = np.clip(np.stack([texture + 110, texture + 120, texture + 100], axis=-1), 0, 240).astype(np.uint8)
    noise = [rng.integers(0, 9, (height, width, 3), dtype=np.uint8) for _ in range(8)]  # sensor noise, 0..8
    box_texture = rng.integers(10, 70, (height, width, 3), dtype=np.uint8)
    partial = path.with_suffix(".tmp.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                                                             "sc_threshold": "0", "crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            t = i / fps
            frame = background + noise[i % len(noise)]
            for start, end, top, size in events:
                if start <= t < end:
                    left = int((t - start) / (end - start) * (width + size)) - size
                    a, b = max(0, left), min(width, left + size)
                    if b > a:
                        frame[top:top + size, a:b] = box_texture[top:top + size, a:b]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    sidecar.write_text(key)
    print(f"rendered in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    return path


def clip(gop_seconds: float) -> Path:
    return boxes_clip(f"parallel_{SECONDS}s_{HEIGHT}p_gop{gop_seconds:g}", WIDTH, HEIGHT, FPS, SECONDS,
                      round(FPS * gop_seconds), EVENTS, seed=7, waves=(23.0, 17.0), crf=26)


def similar(a, b, step: float) -> bool:
    return len(a) == len(b) and all(abs(x.start - y.start) <= step + 0.1 and abs(x.end - y.end) <= step + 0.1
                                    for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gop", type=float, default=2.0, help="seconds between keyframes (cameras: 1-4)")
    args = parser.parse_args()

    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings
    from vimo.runners import run_local

    path = clip(args.gop)
    options, settings = Options(format="json"), Settings()
    print(f"clip: {path.name}, {SECONDS / 60:.0f} min {WIDTH}x{HEIGHT} @ {FPS} fps, keyframe every {args.gop:g} s, "
          f"{path.stat().st_size / 1e6:.0f} MB; {os.cpu_count()} cores; truth: "
          + ", ".join(f"{a:g}-{b:g}s" for a, b, *_ in EVENTS))
    baseline = None
    for workers in args.workers:
        load = os.getloadavg()[0]  # other work on the machine caps the speed-up: shown with each run
        started = time.perf_counter()
        if workers == 1:  # one process decoding on one core, as each worker of the pool does
            result = analyze_clip(path, options, settings, threads=1)
        else:
            result = run_local(str(path), options, settings, SECONDS, workers=workers)
        wall = time.perf_counter() - started
        if baseline is None:
            baseline = (wall, result.events)
        speedup = baseline[0] / wall
        same = similar(result.events, baseline[1], options.step)
        spans = ", ".join(f"{e.start:.1f}-{e.end:.1f}" for e in result.events)
        print(f"workers={workers}: load before {load:.1f}, wall {wall:6.1f} s  speed-up {speedup:4.2f}x  "
              f"frames {result.video.frames_analyzed}"
              f"  events {len(result.events)} [{spans}]  same as 1 worker within the step: {same}", flush=True)
    started = time.perf_counter()
    result = analyze_clip(path, options, settings)
    wall = time.perf_counter() - started
    print(f"for reference, one process with FFmpeg's own frame threads: wall {wall:6.1f} s  "
          f"same events: {similar(result.events, baseline[1], options.step)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
