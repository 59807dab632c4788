"""Regions and exclusions on busy scenes: events found with and without them, against ground truth.

Usage::

    .venv/bin/python bench/regions.py
    .venv/bin/python bench/regions.py --only door_street

Each scene is busy where the caller does not care (traffic on a road, trees in the wind) and has a
few small events where they do. The ground truth of a region is when a person who matters is
visible and moving inside it. Every scene is run without options (what a user got before regions
existed: the busy part dominates) and with its region or exclusion; the figures are events found,
true and false positives (matched as in bench/quality.py) and the analysis time. Clips are rendered
by test_data/scenes.py and cached in bench/out/regions/ like quality.py's. The script measures; the
tests (tests/test_regions.py) assert.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "test_data"))
sys.path.insert(0, str(ROOT / "bench"))

from quality import cache_key, match, render_once, scores  # noqa: E402
from scenes import Actor, Scene, Tree, crossing, encode  # noqa: E402

OUT = ROOT / "bench" / "out" / "regions"


@dataclass
class Case:
    name: str
    scene: Scene
    watched: tuple  # the actors whose motion the region is for
    options: dict  # the region / exclusion, as the API takes them
    inside: tuple[float, float, float, float]  # where a watched actor counts: (x0, y0, x1, y1) fractions
    note: str
    bitrate: int = 700_000

    def truth(self) -> list[tuple[float, float]]:
        """Spans in which a watched actor is visible, moving and overlapping ``inside``."""
        w, h = self.scene.width, self.scene.height
        x0, y0, x1, y1 = self.inside
        step = 0.01
        moving = []
        for i in range(int(self.scene.duration / step)):
            t = (i + 0.5) * step
            moving.append(any(a.is_moving(t) and (b := a.box(t, w, h)) and b[2] > x0 * w and b[0] < x1 * w
                              and b[3] > y0 * h and b[1] < y1 * h for a in self.watched))
        spans, start = [], None
        for i, m in enumerate(moving + [False]):
            if m and start is None:
                start = i * step
            elif not m and start is not None:
                spans.append((round(start, 2), round(i * step, 2)))
                start = None
        return spans


def traffic(lanes=((0.97, True), (0.86, False)), every: float = 2.0, duration: float = 30.0, aspect=16 / 9,
            size: float = 0.16) -> tuple[Actor, ...]:
    """A car every ``every`` seconds, taking turns in ``lanes`` (feet y, left to right?)."""
    cars, i, t = [], 0, -1.0
    while t < duration:
        y, ltr = lanes[i % len(lanes)]
        cars.append(crossing("car", size, t, 2.5, y, left_to_right=ltr, seed=40 + i, aspect=aspect))
        t += every
        i += 1
    return tuple(cars)


def cases() -> list[Case]:
    a = 16 / 9
    walkers = (crossing("person", 0.14, 4.0, 7.0, 0.62, seed=1, aspect=a),
               crossing("person", 0.12, 18.0, 7.0, 0.62, left_to_right=False, seed=2, aspect=a))
    pavement = [[[0.3, 0.4], [0.7, 0.4], [0.7, 0.66], [0.3, 0.66]]]
    road = [[[0.0, 0.68], [1.0, 0.68], [1.0, 1.0], [0.0, 1.0]]]
    trees = (Tree((0.0, 0.02, 0.3, 0.66), amplitude=6.0, frequency=0.9, seed=3),
             Tree((0.72, 0.05, 1.0, 0.66), amplitude=7.0, frequency=1.1, seed=4))
    door_visitor = Actor("person", 0.30, ((6.0, 0.45, 0.66), (9.0, 0.55, 0.66), (13.0, 0.55, 0.66), (16.0, 0.45, 0.66)),
                         seed=5)
    distant = (crossing("person", 0.06, 5.0, 14.0, 0.55, seed=6, aspect=a),)
    return [
        Case("traffic_pavement", Scene(width=640, height=360, duration=30.0, fps=10.0, noise=2.0, seed=301,
                                       actors=traffic() + walkers),
             walkers, {"regions": pavement}, (0.3, 0.4, 0.7, 0.66),
             "a car every 2 s on the road; two people walk along the pavement; region: 10 % of the pavement"),
        Case("traffic_excluded", Scene(width=640, height=360, duration=30.0, fps=10.0, noise=2.0, seed=302,
                                       actors=traffic() + walkers),
             walkers, {"exclude": road}, (0.0, 0.0, 1.0, 1.0),
             "the same kind of street; the road excluded"),
        Case("door_street", Scene(width=640, height=360, duration=24.0, fps=10.0, noise=2.5, seed=303, trees=trees,
                                  actors=traffic(every=3.0, duration=24.0) + (door_visitor,)),
             (door_visitor,), {"regions": [[[0.3, 0.1], [0.7, 0.1], [0.7, 0.68], [0.3, 0.68]]],
                               "exclude": road}, (0.3, 0.1, 0.7, 0.68),
             "a door camera: gusty trees both sides, traffic below; a visitor comes up, waits, leaves"),
        Case("small_region_distant", Scene(width=1280, height=720, duration=24.0, fps=10.0, noise=2.0, seed=304,
                                           actors=traffic(every=1.5, duration=24.0) + distant),
             distant, {"regions": [[[0.35, 0.45], [0.6, 0.45], [0.6, 0.58], [0.35, 0.58]]]}, (0.35, 0.45, 0.6, 0.58),
             "720p, a car every 1.5 s; a person 6 % high crosses far off; region: 3 % of the picture",
             bitrate=2_000_000),
    ]


def generate(case: Case) -> list[tuple[float, float]]:
    path = OUT / f"{case.name}.mp4"

    def render() -> dict:
        encode(case.scene, path, bitrate=case.bitrate)
        return {"truth": case.truth()}

    remembered, rendered = render_once(path, cache_key(case.scene, case.bitrate, case.inside), render)
    if rendered:
        print(f"rendered {case.name}", file=sys.stderr)
    return [tuple(s) for s in remembered["truth"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME")
    args = parser.parse_args(argv)
    try:
        os.nice(10)
    except OSError:
        pass
    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings

    print(f"{'clip':22s} {'options':8s} {'truth':>5s} {'found':>5s} {'TP':>3s} {'FP':>3s} {'FN':>3s} {'F1':>5s} "
          f"{'ms':>6s}  events (start-end)")
    for case in cases():
        if args.only and case.name not in args.only:
            continue
        truth = generate(case)
        for label, fields in (("none", {}), ("region", case.options)):
            options = Options.parse({k: json.dumps(v) for k, v in fields.items()})
            started = time.perf_counter()
            events = analyze_clip(OUT / f"{case.name}.mp4", options, Settings()).to_dict()["events"]
            ms = (time.perf_counter() - started) * 1000
            tp = match(events, truth)
            fp, fn = len(events) - tp, len(truth) - tp
            f1 = scores(tp, fp, fn)[2]
            spans = " ".join(f"{e['start']:.1f}-{e['end']:.1f}" for e in events)
            print(f"{case.name:22s} {label:8s} {len(truth):5d} {len(events):5d} {tp:3d} {fp:3d} {fn:3d} {f1:5.2f} "
                  f"{ms:6.0f}  {spans}")
        print(f"{'':22s} truth {' '.join(f'{s:.1f}-{e:.1f}' for s, e in truth)}  ({case.note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
