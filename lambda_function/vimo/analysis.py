"""One piece of media in, events and the facts about the media out: the pipeline's driver.

This is the only module that knows the order of the stages (samples -> motion -> events) and the
strategy for decoding as little as possible; the stages themselves know nothing of each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import Options, Settings
from .errors import unsupported
from .events import Event, build_events
from .frames import Clip, VideoInfo, open_frames
from .motion import MotionDetector
from .upload import Upload


@dataclass
class Result:
    events: list[Event]
    video: VideoInfo
    elapsed_ms: int

    def to_dict(self) -> dict:
        return {"events": [e.to_dict() for e in self.events], "video": self.video.to_dict(),
                "elapsed_ms": self.elapsed_ms}


def analyze_upload(upload: Upload, workdir: Path, settings: Settings) -> Result:
    """Analyse an upload; a clip is written to ``workdir`` (never under the client's name) first."""
    if upload.clip is not None:
        path = workdir / "clip"
        path.write_bytes(upload.clip.data)
        return analyze_clip(path, upload.options, settings)
    return analyze_frames(upload, settings)


def analyze_clip(path: Path, options: Options, settings: Settings) -> Result:
    started = time.perf_counter()
    with Clip(str(path), settings) as clip:
        detector = MotionDetector(options.sensitivity)
        counted = _Counter()
        motions = (detector(sample) for sample in counted(clip.samples(options.step)))
        events = build_events(motions, options.cooldown, options.tile_width)
        if counted.n == 0:
            raise unsupported("not_a_video", "No frame of the video could be decoded: the file is damaged or truncated.")
        width, height = clip.size
        if counted.rotation in (90, 270):
            width, height = height, width
        video = VideoInfo(duration=max(clip.duration_hint(), counted.last_time), fps=clip.fps, width=width,
                          height=height, codec=clip.codec, frames_analyzed=counted.n)
    return Result(events, video, round((time.perf_counter() - started) * 1000))


def analyze_frames(upload: Upload, settings: Settings) -> Result:
    started = time.perf_counter()
    options = upload.options
    times = options.timestamps or [i * options.interval for i in range(len(upload.frames))]
    samples, video = open_frames(upload.frames, times, settings)
    detector = MotionDetector(options.sensitivity)
    events = build_events((detector(s) for s in samples), options.cooldown, options.tile_width)
    return Result(events, video, round((time.perf_counter() - started) * 1000))


class _Counter:
    """Counts samples as they stream past and remembers the last time and the rotation."""

    def __init__(self):
        self.n = 0
        self.last_time = 0.0
        self.rotation = 0

    def __call__(self, samples):
        for sample in samples:
            self.n += 1
            self.last_time = sample.time
            self.rotation = sample.rotation
            yield sample
