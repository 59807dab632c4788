"""One piece of media in, events and the facts about the media out: the pipeline's driver.

This is the only module that knows the order of the stages (samples -> motion -> events) and the
strategy for decoding as little as possible; the stages themselves know nothing of each other.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Options, Settings
from .errors import unsupported
from .events import Event, EventBuilder, build_events
from .frames import Clip, VideoInfo, open_frames
from .motion import MotionDetector
from .upload import Upload

# Keyframes at least this often (seconds) are dense enough to find every stretch with motion.
SCREEN_KEYFRAME_INTERVAL = 1.0


@dataclass
class Result:
    events: list[Event]
    video: VideoInfo
    elapsed_ms: int
    # False when the analysis stopped at its deadline; ``analyzed_until`` then says how far it got.
    complete: bool = True
    analyzed_until: float | None = None

    def to_dict(self) -> dict:
        result = {"events": [e.to_dict() for e in self.events], "video": self.video.to_dict(),
                  "elapsed_ms": self.elapsed_ms, "complete": self.complete}
        if not self.complete:
            result["analyzed_until"] = round(self.analyzed_until or 0.0, 3)
        return result


def analyze_clip(path: Path | str, options: Options, settings: Settings, start: float = 0.0,
                 end: float = math.inf, deadline: float | None = None) -> Result:
    """Events of a clip (or of its part from ``start`` to ``end`` seconds), decoding as little as
    the keyframes allow.

    A first pass decodes only keyframes on the sampling grid. If keyframes are as dense as the
    grid (intra-only codecs), that pass is the analysis. If they come at least every
    ``SCREEN_KEYFRAME_INTERVAL`` seconds (phones, cameras), they screen the clip: only the stretches
    between keyframes that differ are decoded fully. Otherwise (long GOPs) the whole clip is decoded,
    skipping the frames no other frame depends on. ``deadline`` (a ``time.monotonic()`` value) stops
    the analysis early with ``complete=False`` rather than running past it.
    """
    started = time.perf_counter()
    with Clip(str(path), settings) as clip:
        tally = _Tally(deadline)
        screen = MotionDetector(options.sensitivity, screening=True)
        detector = MotionDetector(options.sensitivity)
        builder = EventBuilder(options.cooldown, options.tile_width)
        screened: list[tuple[float, bool]] = []
        for sample in tally(clip.keyframe_samples(options.step, start, end)):
            screened.append((sample.time, screen(sample).hit))
            builder.feed(detector(sample))
        if tally.n == 0 and tally.complete:
            raise unsupported("not_a_video", "No frame of the video could be decoded: the file is damaged or truncated.")

        if tally.complete and clip.keyframe_interval > options.step * 1.5:
            if clip.keyframe_interval <= SCREEN_KEYFRAME_INTERVAL:
                spans = [(max(a, start), min(b, end)) for a, b in busy_spans(screened, options.step)]
            else:
                spans = [(start, end)]
            tally.restart()
            detector = MotionDetector(options.sensitivity)
            builder = EventBuilder(options.cooldown, options.tile_width)
            for span_start, span_end in spans:
                detector.reset()
                for sample in tally(clip.samples(options.step, span_start, span_end)):
                    builder.feed(detector(sample))
                if not tally.complete:
                    break
        builder.close()

        width, height = clip.size
        if tally.rotation in (90, 270):
            width, height = height, width
        video = VideoInfo(duration=max(clip.duration_hint(), tally.last_time), fps=clip.fps, width=width,
                          height=height, codec=clip.codec, frames_analyzed=tally.n)
    return Result(builder.events, video, round((time.perf_counter() - started) * 1000), tally.complete,
                  None if tally.complete else tally.last_time)


def busy_spans(screened: list[tuple[float, bool]], step: float) -> list[tuple[float, float]]:
    """The stretches between keyframes that differ, each widened to the keyframes around it and
    by one step, and merged where they touch: what must be decoded fully."""
    spans: list[tuple[float, float]] = []
    for (before, _), (after, busy) in zip(screened, screened[1:]):
        if not busy:
            continue
        start, end = max(0.0, before - step), after + step
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def analyze_frames(upload: Upload, settings: Settings) -> Result:
    started = time.perf_counter()
    options = upload.options
    times = options.timestamps or [i * options.interval for i in range(len(upload.frames))]
    samples, video = open_frames(upload.frames, times, settings)
    detector = MotionDetector(options.sensitivity)
    events = build_events((detector(s) for s in samples), options.cooldown, options.tile_width)
    return Result(events, video, round((time.perf_counter() - started) * 1000))


class _Tally:
    """Counts samples as they stream past, remembers the last time and rotation, and stops the
    stream once the deadline has passed."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self.complete = True
        self.restart()

    def restart(self) -> None:
        self.n = 0
        self.last_time = 0.0
        self.rotation = 0

    def __call__(self, samples):
        for sample in samples:
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.complete = False
                return
            self.n += 1
            self.last_time = sample.time
            self.rotation = sample.rotation
            yield sample
