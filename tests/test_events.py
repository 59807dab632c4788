"""An event always holds its peak: ``start <= peak <= end``, on every path that makes or changes one.

The paths: the event builder (keyframe pass, full decode and frame bursts all feed it), the
re-timing of edges from finer samples (``analysis.retimed``), the merge of a long clip's segments,
and the segments' wire format. Each is driven by hypothesis over random motion, and the one the
issue reported (a picture that changed at once: its only hit is its peak) is checked as it was seen.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings as hypothesis_settings, strategies as st
from PIL import Image

from vimo import segments
from vimo.analysis import Result, retimed
from vimo.events import Event, EventBuilder
from vimo.frames import Sample, VideoInfo
from vimo.motion import Motion


def sample(t: float) -> Sample:
    """A real sample: a gray copy and a picture, as a burst's stills are."""
    return Sample(t, np.zeros((4, 4), np.uint8), Image.new("RGB", (8, 8), (int(t * 10) % 256, 0, 0)))


def motions(times: list[float], hits: list[tuple[bool, int]]) -> list[Motion]:
    return [Motion(t, score / 100 if hit else 0.0, hit and i > 0, sample(t))
            for i, (t, (hit, score)) in enumerate(zip(times, hits))]


def build(ms: list[Motion], cooldown: float) -> list[Event]:
    builder = EventBuilder(cooldown, 80)
    for m in ms:
        builder.feed(m)
    return builder.close()


def assert_holds(events: list[Event]) -> None:
    for e in events:
        assert 0.0 <= e.start <= e.peak <= e.end, e


# Sample times: increasing, at irregular gaps (keyframes, VFR clips, bursts with their own timestamps).
gaps = st.lists(st.floats(0.01, 5.0, allow_nan=False), min_size=1, max_size=80)
hits = st.lists(st.tuples(st.booleans(), st.integers(1, 100)), min_size=80, max_size=80)
cooldowns = st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0, 3.7, 60.0])


def times_from(gaps: list[float], origin: float = 0.0) -> list[float]:
    return [origin + t for t in np.cumsum([0.0, *gaps]).tolist()]


def test_a_picture_that_changed_at_once_ends_at_its_peak():
    """The issue's case: one hit at 30.1 after a still sample at 29.5 (an exposure jump)."""
    ms = [Motion(29.5, 0.0, False, sample(29.5)), Motion(30.1, 0.4, True, sample(30.1)),
          Motion(30.6, 0.0, False, sample(30.6))]
    [event] = build(ms, cooldown=2.0)
    assert (event.start, event.peak, event.end) == (29.8, 30.1, 30.1)


@hypothesis_settings(max_examples=300, deadline=None)
@given(gaps=gaps, hits=hits, cooldown=cooldowns)
def test_built_events_hold_their_peaks(gaps, hits, cooldown):
    events = build(motions(times_from(gaps), hits), cooldown)
    assert_holds(events)
    assert all(a.end <= b.start for a, b in zip(events, events[1:]))


@hypothesis_settings(max_examples=300, deadline=None)
@given(event=st.tuples(st.floats(0, 100), st.floats(0, 20), st.floats(0, 1)),
       start_gaps=gaps, start_hits=hits, end_gaps=gaps, end_hits=hits, shift=st.floats(-5, 5))
def test_retimed_edges_hold_the_peak(event, start_gaps, start_hits, end_gaps, end_hits, shift):
    """Finer samples around each edge may find the first or last hit anywhere, even past the peak
    (they are scored without the first pass's object tracks)."""
    start, length, where = event
    original = Event(start, start + length, start + where * length, 0.5)
    around_start = motions(times_from(start_gaps, max(0.0, original.start - 2 + shift)), start_hits)
    around_end = motions(times_from(end_gaps, max(0.0, original.end - 2 + shift)), end_hits)
    moved = retimed(original, around_start, around_end)
    assert_holds([moved])
    assert moved.peak == original.peak and moved.score == original.score


@hypothesis_settings(max_examples=200, deadline=None)
@given(gaps=gaps, hits=hits, cooldown=cooldowns, cuts=st.lists(st.integers(1, 79), max_size=6),
       missing=st.lists(st.booleans(), min_size=7, max_size=7))
def test_merged_segments_hold_their_peaks(gaps, hits, cooldown, cuts, missing):
    times = times_from(gaps)
    ms = motions(times, hits)
    bounds = sorted({times[c] for c in cuts if c < len(times)})
    plan = list(zip([0.0, *bounds], [*bounds, math.inf]))
    pieces = []
    for i, (start, end) in enumerate(plan):
        mine = [m for m in ms if start <= m.time <= end]
        if mine and start > 0:  # a segment's first sample has nothing to compare with
            mine[0] = Motion(mine[0].time, 0.0, False, mine[0].sample)
        pieces.append(None if missing[i] else build(mine, cooldown))
    merged = segments.merge(pieces, cooldown, step=0.5)
    assert_holds(merged)


@hypothesis_settings(max_examples=100, deadline=None)
@given(spans=st.lists(st.tuples(st.floats(0, 1000), st.floats(-3, 3), st.floats(-3, 3), st.floats(0, 1)),
                      max_size=10))
def test_events_sent_between_invocations_hold_their_peaks(spans):
    """A Lambda segment worker's answer, read back by the parent: the wire keeps the rule."""
    events = [Event(max(0.0, p + a), max(0.0, p + b), p, s) for p, a, b, s in spans]
    assert_holds(events)
    video = VideoInfo(duration=1000.0, fps=25.0, width=64, height=36, codec="h264", frames_analyzed=3)
    back = segments.result_from_dict(segments.result_to_dict(Result(events, video, 1), max_tiles=4))
    assert_holds(back.events)
    assert [(e.start, e.end, e.peak) for e in back.events] == [(e.start, e.end, e.peak) for e in events]


def test_an_event_ending_at_its_peak_is_joined_across_a_boundary_as_the_serial_run_joins_it():
    """Hits 2.5 s apart with a 2.3 s cooldown are two events, however the clip is cut between them."""
    times = [i * 0.5 for i in range(12)]
    pattern = [(t in (2.0, 4.5), 50) for t in times]
    serial = build(motions(times, pattern), cooldown=2.3)
    ms = motions(times, pattern)  # fresh samples: building an event releases its pictures
    first = [m for m in ms if m.time <= 3.0]
    second = [Motion(3.0, 0.0, False, sample(3.0))] + [m for m in ms if m.time > 3.0]
    merged = segments.merge([build(first, 2.3), build(second, 2.3)], 2.3, step=0.5)
    assert len(serial) == len(merged) == 2


@hypothesis_settings(max_examples=15, deadline=None)
@given(gaps=st.lists(st.floats(0.05, 4.0), min_size=7, max_size=7), cooldown=cooldowns)
def test_bursts_at_any_times_hold_their_peaks(gaps, cooldown):
    """The committed burst (someone walking through eight stills) posted with random timestamps."""
    from conftest import TEST_DATA
    from vimo.analysis import analyze_frames
    from vimo.config import Options, Settings
    from vimo.upload import Part, Upload

    frames = tuple(Part(p.read_bytes(), "image/jpeg", p.name) for p in sorted((TEST_DATA / "burst").glob("*.jpg")))
    times = tuple(round(t, 3) for t in times_from(gaps))
    result = analyze_frames(Upload(options=Options(timestamps=times, cooldown=cooldown), frames=frames), Settings())
    assert result.events
    assert_holds(result.events)
