"""Write the small committed test media and their ground truth (``test_data/truth.json``).

Run with ``.venv/bin/python test_data/make_test_data.py``. Deterministic (fixed seeds) and
idempotent: every run rewrites the same files. Each file is kept small (most well under 300 KB,
all together under 3 MB) by using 320x180 to 640x360 pictures, 6-14 s, and camera-substream
bitrates; that is enough for every container/codec path and the timing cases the tests need.

truth.json maps each file (or frame-burst directory) to::

    {"events": [[start, end], ...], "width": W, "height": H,   # as displayed, after rotation
     "codec": "h264" | ..., "rotation": 0 | 90, "vfr": bool}

Bursts also list their ``frames`` (relative paths, in order) and the ``interval`` between them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ among the committed test data
sys.path.insert(0, str(HERE))

from scenes import Scene, crossing, encode, vfr_times, write_stills  # noqa: E402


def walk_scene(width: int, height: int, duration: float = 8.0, fps: float = 25.0) -> Scene:
    """One person crossing a textured street from 1.5 s to 6.5 s (truth is independent of the size)."""
    aspect = width / height
    person = crossing("person", 0.45, start=1.5, duration=5.0, y=0.92, seed=1, aspect=aspect)
    return Scene(width=width, height=height, duration=duration, fps=fps, actors=(person,), noise=2.0, seed=11)


def two_events_scene() -> Scene:
    """A person crossing 1.0-4.5 s, then (4.5 s of nothing) a car the other way 9.0-11.0 s."""
    w, h = 480, 270
    person = crossing("person", 0.4, start=1.0, duration=3.5, y=0.9, seed=2, aspect=w / h)
    car = crossing("car", 0.2, start=9.0, duration=2.0, y=0.97, left_to_right=False, seed=3, aspect=w / h)
    return Scene(width=w, height=h, duration=14.0, actors=(person, car), noise=2.0, seed=12)


def portrait_scene() -> Scene:
    """A phone held upright (270x480 as displayed), 30 fps, keyframe every 1 s: a person crosses 2.0-6.0 s."""
    w, h = 270, 480
    person = crossing("person", 0.3, start=2.0, duration=4.0, y=0.9, seed=4, aspect=w / h)
    return Scene(width=w, height=h, duration=8.0, fps=30.0, actors=(person,), noise=2.5, seed=13)


def vfr_scene() -> tuple[Scene, list[float]]:
    """12 s declared as 30 fps, but 0-6 s holds only 3 frames a second: a person crosses 7.5-10.5 s.

    Frame index / 30 would put the crossing at about 2.6-5.6 s, so only timestamps give the truth.
    """
    w, h = 480, 270
    person = crossing("person", 0.4, start=7.5, duration=3.0, y=0.9, seed=5, aspect=w / h)
    scene = Scene(width=w, height=h, duration=12.0, fps=30.0, actors=(person,), noise=2.0, seed=14)
    return scene, vfr_times([(0, 6, 3), (6, 12, 30)], jitter=0.008, seed=14)


def burst_scene(width: int, height: int, start: float, duration: float, seed: int, noise: float = 1.5) -> Scene:
    """A snapshot camera's view: one person crossing from ``start`` for ``duration`` seconds."""
    person = crossing("person", 0.4, start=start, duration=duration, y=0.9, seed=seed, aspect=width / height)
    return Scene(width=width, height=height, duration=10.0, actors=(person,), noise=noise, seed=20 + seed)


# (file, scene, encode keyword arguments, truth extras)
def clips() -> list[tuple[str, Scene, dict, dict]]:
    vfr, times = vfr_scene()
    return [
        ("walk_h264.mp4", walk_scene(640, 360), {"codec": "libx264", "bitrate": 200_000}, {"codec": "h264"}),
        ("walk_h265.mov", walk_scene(480, 270), {"codec": "libx265", "bitrate": 120_000}, {"codec": "hevc"}),
        ("walk_vp9.webm", walk_scene(480, 270), {"codec": "libvpx-vp9", "bitrate": 120_000,
                                                  "options": {"deadline": "good", "cpu-used": "4"}}, {"codec": "vp9"}),
        ("walk_vp8.webm", walk_scene(320, 180), {"codec": "libvpx", "bitrate": 150_000}, {"codec": "vp8"}),
        ("walk_mjpeg.avi", walk_scene(320, 180, duration=7.0, fps=10.0), {"codec": "mjpeg", "bitrate": 200_000}, {"codec": "mjpeg"}),
        ("walk_mpeg4.avi", walk_scene(320, 180), {"codec": "mpeg4", "bitrate": 200_000}, {"codec": "mpeg4"}),
        ("walk_h264.mkv", walk_scene(480, 270), {"codec": "libx264", "bitrate": 150_000}, {"codec": "h264"}),
        ("two_events.mp4", two_events_scene(), {"codec": "libx264", "bitrate": 120_000}, {"codec": "h264"}),
        ("still_drift.mp4", Scene(width=480, height=270, duration=10.0, drift=0.2, noise=2.5, seed=15),
         {"codec": "libx264", "bitrate": 120_000}, {"codec": "h264"}),
        ("still_night.mp4", Scene(width=480, height=270, duration=10.0, night=True, noise=9.0, seed=16),
         {"codec": "libx264", "bitrate": 150_000}, {"codec": "h264"}),
        ("portrait_rot90.mp4", portrait_scene(), {"codec": "libx264", "bitrate": 150_000, "gop": 30, "rotation": 90},
         {"codec": "h264", "rotation": 90}),
        ("vfr.mkv", vfr, {"codec": "libx264", "bitrate": 150_000, "times": times}, {"codec": "h264", "vfr": True}),
    ]


def main() -> None:
    truth: dict[str, dict] = {}
    for name, scene, kwargs, extra in clips():
        encode(scene, HERE / name, threads=1, **kwargs)  # one thread: reproducible bytes
        truth[name] = {"events": [list(span) for span in scene.truth()], "width": scene.width, "height": scene.height,
                       "codec": extra["codec"], "rotation": extra.get("rotation", 0), "vfr": extra.get("vfr", False)}

    # A camera's snapshot burst: 8 JPEGs 1 s apart; a person is in frames 2-5 (crossing 1.6-5.8 s).
    burst = burst_scene(640, 360, start=1.6, duration=4.2, seed=6)
    names = [f"burst/{i + 1:02d}.jpg" for i in range(8)]
    write_stills(burst, [float(i) for i in range(8)], [HERE / n for n in names], quality=75)
    truth["burst"] = {"events": [list(s) for s in burst.truth()], "width": 640, "height": 360, "codec": "jpeg",
                      "rotation": 0, "vfr": False, "frames": names, "interval": 1.0}

    # PNG frames: 4 frames 1 s apart, a person crossing 0.6-2.7 s (in frames 2 and 3).
    small = burst_scene(320, 180, start=0.6, duration=2.1, seed=7, noise=0.7)  # PNG: little noise, or it is huge
    names = [f"burst_png/{i + 1:02d}.png" for i in range(4)]
    write_stills(small, [0.0, 1.0, 2.0, 3.0], [HERE / n for n in names], optimize=True)
    truth["burst_png"] = {"events": [list(s) for s in small.truth(resolution=0.01)], "width": 320, "height": 180,
                          "codec": "png", "rotation": 0, "vfr": False, "frames": names, "interval": 1.0}

    # One WebP still: decodable, but a single frame can show no motion.
    write_stills(burst, [0.0], [HERE / "frame.webp"], quality=80)
    truth["frame.webp"] = {"events": [], "width": 640, "height": 360, "codec": "webp", "rotation": 0, "vfr": False,
                           "frames": ["frame.webp"], "interval": 1.0}

    # burst_png's scene lasts 10 s but only frames 0-3 s exist: clip its truth to them.
    truth["burst_png"]["events"] = [[s, min(e, 3.0)] for s, e in truth["burst_png"]["events"] if s < 3.0]
    truth["burst"]["events"] = [[s, min(e, 7.0)] for s, e in truth["burst"]["events"] if s < 7.0]

    (HERE / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    total = 0
    for name in sorted(truth):
        files = [HERE / f for f in truth[name].get("frames", [name])]
        size = sum(f.stat().st_size for f in files)
        total += size
        print(f"{name:22s} {size / 1024:7.1f} KB  events {truth[name]['events']}")
    print(f"{'total':22s} {total / 1024:7.1f} KB")


if __name__ == "__main__":
    main()
