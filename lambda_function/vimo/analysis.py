"""One piece of media in, events and the facts about the media out: the pipeline's driver.

This is the only module that knows the order of the stages (samples -> motion -> events) and the
strategy for decoding as little as possible; each stage only consumes what the one before it
produces (samples carry their pictures, so that events can make tiles from them).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import clock
from .config import Options, Settings
from .errors import unsupported
from .events import Event, build_events
from .frames import Clip, Sample, VideoInfo, next_on_grid, open_frames
from .motion import UsualChange, detect
from .screen import Screen, screen
from .timeline import Timeline
from .upload import Upload

# Samples this far apart (seconds) are dense enough to find events among: motion that starts and
# stops between two samples a second apart is too brief to matter on a contact sheet. Keyframes
# at least this often are screened this far apart, however short the step.
KEYFRAME_EVENTS_INTERVAL = 1.0
# Screening long GOPs: two samples checked differ when a change this much more sensitive than the
# request's stands between them (a miss costs more than a decode), and the stretch decoded around
# what the packet sizes flag reaches SCREEN_EDGE seconds (at least two steps) beyond it, for the
# still samples that time an event's edges.
SCREEN_SENSITIVITY = 0.25
SCREEN_EDGE = 1.0
# Where the sizes say nothing moved, one keyframe per SCREEN_KEYFRAMES seconds (at least one per
# group of pictures) is decoded: the still stretch's samples, and evidence of slow motion.
SCREEN_KEYFRAMES = 4.0


@dataclass
class Result:
    events: list[Event]
    video: VideoInfo
    elapsed_ms: int
    # False when the analysis stopped at its deadline; ``analyzed_until`` then says how far it got.
    complete: bool = True
    analyzed_until: float | None = None
    # How the clip was decoded: "keyframes" (events found among them), "screened" (keyframes, and
    # in full only where something may have moved), "full" (all but non-reference frames), "frames".
    decoding: str = "keyframes"
    timeline: Timeline | None = None  # with the option timeline=true: every sample's verdict

    def to_dict(self) -> dict:
        origin = clock.parse(self.video.recorded_at)
        result = {"events": [e.to_dict(origin) for e in self.events], "video": self.video.to_dict(),
                  "elapsed_ms": self.elapsed_ms, "complete": self.complete}
        if not self.complete:
            result["analyzed_until"] = round(self.analyzed_until or 0.0, 3)
        if self.timeline is not None:
            result["timeline"] = self.timeline.to_dict()
        return result


def analyze_clip(path: Path | str | Clip, options: Options, settings: Settings, start: float = 0.0,
                 end: float = math.inf, deadline: float | None = None, threads: int | None = None,
                 progress: Callable[[float], None] | None = None) -> Result:
    # progress: called with each sample's time as the passes stream (a progress bar's; it steps back
    # when the whole clip must be decoded after the keyframe pass).
    """Events of a clip (or of its part from ``start`` to ``end`` seconds), decoding as little as
    the keyframes allow. ``path`` may be a ``Clip`` already opened (to read its length), which
    this closes.

    A first pass decodes only keyframes and finds events among them (skipped when the container's
    index already shows keyframes too sparse to find events among): one per
    ``KEYFRAME_EVENTS_INTERVAL`` where the index shows keyframes every ``step`` or more often
    (intra-only codecs, short GOPs), else one per ``step``. With keyframes at most
    ``KEYFRAME_EVENTS_INTERVAL`` (or two steps) apart, the events stand; the stretches around
    each one's start and end are then sampled at ``step`` to time them finely: from the keyframes
    in between, if the first pass took one a second, else by decoding those stretches, where the
    first pass's samples are more than two steps apart. Sparser keyframes (long GOPs): the span is
    screened by its packet sizes and decoded in full only where something may have moved
    (``_screened``), or, where the sizes say nothing, decoded in full, skipping the frames no
    other frame depends on; ``Result.decoding`` says which. ``deadline`` (a ``time.monotonic()``
    value) stops early with ``complete=False``; ``threads`` is the decoder's (0: all cores; by
    default the settings' ``decoder_threads``; a process of a pool decodes on one).
    """
    started = time.perf_counter()
    with path if isinstance(path, Clip) else Clip(str(path), settings, threads) as clip:
        tally = _Tally(deadline, progress)
        too_sparse = max(KEYFRAME_EVENTS_INTERVAL, options.step * 2)  # keyframes further apart: decode all
        interval = clip.indexed_keyframe_interval()
        # Once a second only where the index shows keyframes every step (the keyframes between
        # can then time the edges); else every keyframe on the step's grid, as sparse as they come.
        screen = max(options.step, KEYFRAME_EVENTS_INTERVAL) if interval is not None and interval <= options.step \
            else options.step
        events: list[Event] = []
        timeline = Timeline() if options.timeline else None
        if interval is None or interval <= too_sparse:
            usual = UsualChange()
            events = find_events(tally(clip.keyframe_samples(screen, start, end)), options, usual, timeline)
            interval = clip.keyframe_interval
            # At most this far apart: the first keyframe at or after each multiple of ``screen``.
            spacing = interval if interval >= screen else screen + interval
            keyframes = interval <= options.step
            if tally.complete and interval <= too_sparse and (keyframes and screen > options.step
                                                              or spacing > options.step * 2):
                events = [_time_edges(event, clip, spacing, keyframes, options, usual, tally, timeline)
                          for event in events]
        decoding = "keyframes"
        if tally.complete and interval > too_sparse:
            tally.restart()
            timeline = Timeline() if options.timeline else None
            samples = _screened(clip, options, start, end, tally)
            decoding = "full" if samples is None else "screened"
            if samples is None:
                tally.restart()
                samples = tally(clip.samples(options.step, start, end))
            events = find_events(samples, options, timeline=timeline)
        if tally.n == 0 and tally.complete:
            raise unsupported("not_a_video", "No frame of the video could be decoded: the file is damaged or truncated.")

        width, height = clip.size
        if tally.rotation in (90, 270):
            width, height = height, width
        video = VideoInfo(duration=max(clip.duration_hint(), tally.last_time), fps=clip.fps, width=width,
                          height=height, codec=clip.codec, frames_analyzed=tally.n,
                          recorded_at=_recorded_at(options, clip.recording_time()))
    return Result(events, video, round((time.perf_counter() - started) * 1000), tally.complete,
                  None if tally.complete else tally.last_time, decoding, timeline)


def find_events(samples: Iterable[Sample], options: Options, usual: UsualChange | None = None,
                timeline: Timeline | None = None) -> list[Event]:
    motions = detect(samples, options.sensitivity, usual, picture_width=options.tile_width,
                     regions=options.regions, exclude=options.exclude)
    if timeline is not None:
        motions = timeline.record(motions)
    return build_events(motions, options.cooldown, options.tile_width)


def _time_edges(event: Event, clip: Clip, spacing: float, keyframes: bool, options: Options,
                usual: UsualChange, tally: "_Tally", timeline: Timeline | None = None) -> Event:
    """Re-time an event found among samples ``spacing`` apart from ``step``-spaced samples around
    its start and its end: the keyframes there, if ``keyframes`` come every step, else the frames
    decoded. Each edge lies halfway between two samples, the motion began (ended) between them,
    and sampling from the first of them to the second is all it takes; the peak and its tile stay
    as found (in a segment of a clip, the stretch may reach past the segment: the event is the
    segment's, its timing is the clip's). What the first pass taught about the clip's usual
    motion is used as it is: a stretch this short would learn the event itself as usual."""
    reach = spacing / 2

    def motions(around: float):
        start, end = max(0.0, around - reach), around + reach
        samples = tally.again(clip.keyframe_samples(options.step, start, end, baseline=False) if keyframes
                              else clip.samples(options.step, start, end))
        scored = detect(samples, options.sensitivity, usual, learning=False, regions=options.regions,
                        exclude=options.exclude)
        for motion in scored if timeline is None else timeline.record(scored, first=True):
            motion.sample.release()
            yield motion

    return retimed(event, motions(event.start), motions(event.end))


def retimed(event: Event, around_start: Iterable, around_end: Iterable) -> Event:
    """``event`` with its start at the first hit among the motions ``around_start`` (halfway from
    the sample before), and its end at the last hit of the first run of hits ``around_end``; an
    edge with no hit to go by stays. ``Event`` keeps the peak inside whatever this finds."""
    start = end = None
    before = None
    for motion in around_start:  # up to the first hit
        if motion.hit and before is not None:
            start = (before + motion.time) / 2
            break
        before = motion.time
    before = last_hit = None
    for motion in around_end:  # up to the first still sample after a hit
        if motion.hit and before is not None:
            last_hit = (before, motion.time)
        elif last_hit:
            break
        before = motion.time
    if last_hit:
        end = sum(last_hit) / 2
    return dataclasses.replace(event, start=event.start if start is None else start,
                               end=event.end if end is None else end)


def _screened(clip: Clip, options: Options, start: float, end: float, tally: "_Tally") -> Iterable[Sample] | None:
    """The samples of a span with sparse keyframes, decoding in full only where something may
    have moved, or None when the packets give no usable signal (see ``screen``), or when the
    span's first two keyframes differ where the sizes did not rise (a clip in motion all the
    time): then the caller decodes it all.

    One pass, forward: each stretch whose packets cost more than a still scene's is decoded in
    full (one sample per step) from the keyframe before it to ``SCREEN_EDGE`` beyond it; between
    stretches one keyframe per ``SCREEN_KEYFRAMES`` seconds is decoded, and those are the samples
    there, so that ``detect`` compares still with still and learns the usual motion from the whole
    span. Those keyframes, each stretch's first keyframe and each stretch's last sample also check
    the sizes, each against the one before (see ``_sweep``).
    """
    sizes = screen(clip.packets(start, end))
    if sizes is None:
        return None
    step = options.step
    edge = max(SCREEN_EDGE, 2 * step)
    stretches = _merged(sorted((max(start, _span_start(a, edge, step, sizes.keyframes)), min(end, b + edge))
                               for a, b in sizes.suspect if b + edge > start and a - edge < end), sizes.keyframes)
    # A stretch whose last keyframe comes a step or more after what the sizes flag ends before it:
    # that keyframe, the first after the stretch, is its last still sample, decoded on its own.
    lasts = [_keyframe_before(b, sizes.keyframes) for _, b in stretches]
    stretches = [(a, k - step / 2) if k > a and k >= b - edge + step else (a, b)
                 for (a, b), k in zip(stretches, lasts)]
    samples = tally(_sweep(clip, stretches, sizes, options, start, end))
    first = next(samples, None)
    if first is None:
        return None if tally.complete else iter(())
    return itertools.chain([first], samples)


def _sweep(clip: Clip, stretches: list[tuple[float, float]], sizes: Screen, options: Options,
           start: float, end: float) -> Iterator[Sample]:
    """``_screened``'s samples, in order, checking the sizes as it goes; nothing at all when the
    span's first two keyframes already differ where the sizes did not rise.

    Each sample checked is compared with the one checked before it, more sensitively than the
    request asks (a miss costs more than a decode). Where two differ and the sizes did not rise
    between them, the sizes are not trusted from the first of the two on: the rest is decoded in
    full.
    Someone who arrives with a keyframe costs the frames after it nothing, so a stretch whose first
    keyframe already differs from the sample checked before it is decoded from that sample instead
    (its first sample must be still, to time the event's start). A stretch's last sample is checked
    against what comes next, but the sizes count from its last keyframe: where they flagged motion
    after that keyframe, a change between the stretch's end and the next keyframe passes the check
    (it is found at that keyframe, timed between the two).
    """
    step = options.step
    checked: collections.deque = collections.deque()
    check = detect(_fed(checked), min(1.0, options.sensitivity + SCREEN_SENSITIVITY), UsualChange(), learning=False)

    def differs(sample: Sample) -> bool:
        checked.append(sample)
        return next(check).hit

    previous: Sample | None = None  # the sample checked last, given already (unless it is ``held``)
    held: Sample | None = None  # the span's first keyframe, until what follows it is checked
    position = start
    for a, b in [*stretches, (math.inf, math.inf)]:
        # Between stretches: keyframes only, the first after the stretch before, then on the grid.
        keyframe = _keyframe_before(a, sizes.keyframes) if a < math.inf else math.inf
        keys = clip.keyframe_samples(max(step, SCREEN_KEYFRAMES), position, min(end, keyframe - 1e-3),
                                     baseline=position == start, at_once=True)
        for sample in keys:
            if differs(sample) and previous is not None and not sizes.responds(
                    _keyframe_before(previous.time, sizes.keyframes), sample.time):
                keys.close()
                if held is not None:
                    return  # the first two keyframes: nothing can be trusted
                yield from clip.samples(step, next_on_grid(previous.time, step), end)
                return
            if held is not None:
                yield held
            if previous is None and sample.time <= start + 1e-6:
                held = sample
            else:
                held = None
                yield sample
            previous = sample
        if a == math.inf:
            break
        if held is not None:
            yield held
            held = None
        # A stretch: decoded in full from its keyframe, which comes first.
        stretch = clip.samples(step, a, b, keyframe=keyframe)
        first = next(stretch, None)
        position = b
        if first is None:
            continue
        reopened = differs(first) and previous is not None and abs(first.time - keyframe) < 1e-3
        if reopened:  # the change came with the keyframe: decoded from the sample checked before it instead
            stretch.close()
            stretch = clip.samples(step, max(start, next_on_grid(previous.time, step)), b)
        given = None if reopened else first  # given once the sample after it is known: the last is checked
        for sample in stretch:
            if given is not None:
                yield given
            given = sample
        if given is None:  # reopened, and nothing on the step's grid before the stretch ends
            given = first
        if given is not first:
            differs(given)  # its own verdict is the stretch's; what follows is compared with it
        yield given
        previous, position = given, max(b, given.time + 1e-3)
    if held is not None and held.time >= start - 1e-6:  # one keyframe in all, and none after ``start``:
        yield held  # nothing, so that the span is decoded instead


def _fed(queue: collections.deque) -> Iterator[Sample]:
    """What is put in ``queue``, one at a time: a detector that is not learning gives each verdict
    as soon as it has the sample, so it can be driven one sample per verdict."""
    while True:
        yield queue.popleft()


def _merged(stretches: list[tuple[float, float]], keyframes: list[float]) -> list[tuple[float, float]]:
    """``stretches`` (sorted by start) as one wherever decoding the next would start from a keyframe
    the one before already passed."""
    merged: list[tuple[float, float]] = []
    for a, b in stretches:
        if merged and _keyframe_before(a, keyframes) <= merged[-1][1] + 1e-6:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _keyframe_before(t: float, keyframes: list[float]) -> float:
    """The last keyframe at or before ``t``: where decoding a stretch from ``t`` starts."""
    return max((k for k in keyframes if k <= t + 1e-6), default=t)


def _span_start(suspect: float, edge: float, step: float, keyframes: list[float]) -> float:
    """Where to start decoding a stretch that may hold motion from ``suspect`` on: ``edge`` before
    it, on the step's grid; or from a keyframe at least a step before it, if one comes after that
    (a stretch is decoded from the keyframe before it anyway, and a still sample is all it takes)."""
    latest = max((k for k in keyframes if k <= suspect - step + 1e-6), default=-math.inf)
    return latest if latest >= suspect - edge else math.floor((suspect - edge) / step + 1e-6) * step


def analyze_frames(upload: Upload, settings: Settings) -> Result:
    started = time.perf_counter()
    options = upload.options
    samples, video = open_frames(upload.frames, options.frame_times(len(upload.frames)), settings, options.tile_width)
    video = dataclasses.replace(video, recorded_at=_recorded_at(options, None))
    timeline = Timeline() if options.timeline else None
    events = find_events(samples, options, timeline=timeline)
    return Result(events, video, round((time.perf_counter() - started) * 1000), decoding="frames", timeline=timeline)


def _recorded_at(options: Options, from_container) -> str | None:
    """``video.recorded_at``: the ``start_time`` option, else the container's recording time."""
    start = clock.recording_start(options.start_time, options.timezone, from_container)
    return None if start is None else clock.iso(start)


class _Tally:
    """Counts samples as they stream past, remembers the last time and rotation, and stops the
    stream once the deadline has passed."""

    def __init__(self, deadline: float | None = None, progress: Callable[[float], None] | None = None):
        self.deadline = deadline
        self.progress = progress
        self.complete = True
        self.restart()

    def restart(self) -> None:
        self.n = 0
        self.last_time = 0.0
        self.rotation = 0

    def __call__(self, samples):
        for sample in self.again(samples):
            self.last_time = sample.time
            self.rotation = sample.rotation or self.rotation
            if self.progress is not None:
                self.progress(sample.time)
            yield sample

    def again(self, samples):
        """Counts the samples of a stretch looked at again and stops at the deadline, but leaves
        ``last_time`` where the pass got to: an event's edges lie behind it."""
        for sample in samples:
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.complete = False
                return
            self.n += 1
            yield sample
