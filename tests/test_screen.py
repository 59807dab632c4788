"""Screening long GOPs by packet sizes: decode in full only where something may have moved.

Real encoded clips of ``test_data/scenes.py`` scenes, small and short: a denoised camera's stream
(variable bitrate, a keyframe every 4 s) where a person runs across the view in 1.5 s between two
keyframes, and the same scene as a constant-size stream (CBR with padding and intra refresh), whose
packet sizes say nothing, so the analysis must decode it all as before.
"""

from __future__ import annotations

import sys

import pytest

from conftest import TEST_DATA
from vimo import analysis
from vimo.analysis import analyze_clip
from vimo.config import Options, Settings
from vimo.frames import Clip
from vimo.screen import screen

sys.path.insert(0, str(TEST_DATA))
from scenes import Actor, Scene, crossing, encode  # noqa: E402

WIDTH, HEIGHT = 320, 180
# A person runs across the view from 6.2 to 7.7 s: after the keyframe at 4 s, before the one at 8 s.
SCENE = Scene(width=WIDTH, height=HEIGHT, duration=12.0, noise=1.0, seed=5,
              actors=(crossing("person", 0.35, 6.2, 1.5, 0.92, seed=3, aspect=WIDTH / HEIGHT),))
TRUTH = (6.2, 7.7)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("screen")
    return {
        # Variable bitrate as cameras send it: a still scene costs little.
        "camera": encode(SCENE, folder / "camera.mp4", gop=100, options={"crf": "23", "preset": "veryfast"}),
        # Every packet the same size: CBR padding, intra refresh instead of keyframes.
        "constant": encode(SCENE, folder / "constant.mp4", bitrate=300_000, gop=100, options={
            "preset": "veryfast", "maxrate": "300000", "bufsize": "20000", "x264-params": "nal-hrd=cbr:intra-refresh=1"}),
    }


def analyse(path, **kwargs):
    clip = Clip(str(path), Settings())
    result = analyze_clip(clip, Options(), Settings(), **kwargs)
    return result, clip.frames_decoded


def assert_found(result):
    [event] = result.events
    assert abs(event.start - TRUTH[0]) <= 1.0 and abs(event.end - TRUTH[1]) <= 1.0, result.events


def test_a_brief_crossing_between_two_keyframes_is_found_by_its_packet_sizes(clips):
    """The keyframes before and after show the same still street; the sizes of the frames between
    them are the only evidence, and the stretch they flag is decoded and the event found."""
    packets = Clip(str(clips["camera"]), Settings()).packets()
    sizes = screen(packets)
    assert sizes is not None
    assert [k for k in sizes.keyframes] == pytest.approx([0.0, 4.0, 8.0])
    assert sizes.responds(4.0, 8.0) and not sizes.responds(9.0, 12.0)
    result, _ = analyse(clips["camera"])
    assert result.decoding == "screened"
    assert_found(result)


def test_a_mostly_still_clip_decodes_far_fewer_frames(clips, monkeypatch):
    """The same clip decoded in full (as before screening) takes more than twice the frames, and
    finds the same event."""
    screened, screened_frames = analyse(clips["camera"])
    monkeypatch.setattr(analysis, "screen", lambda packets: None)
    full, full_frames = analyse(clips["camera"])
    assert full.decoding == "full"
    assert_found(full)
    assert [e.to_dict() for e in screened.events] == [e.to_dict() for e in full.events]
    assert screened_frames < 0.6 * full_frames, (screened_frames, full_frames)


def test_a_screened_clip_decodes_each_keyframe_once(clips, monkeypatch):
    """One pass, forward: the keyframes checked between stretches and the keyframe a stretch is
    decoded from are each decoded once (a 4K keyframe costs as much as dozens of still inter
    frames), and the stretch's own frames once."""
    sent = []
    decode = Clip._decode
    monkeypatch.setattr(Clip, "_decode", lambda self, packet: sent.append(packet) or decode(self, packet))
    result, _ = analyse(clips["camera"])
    assert result.decoding == "screened"
    assert_found(result)
    fed = [(packet.pts, packet.is_keyframe) for packet in sent if packet is not None]
    assert len(fed) == len(set(fed)), sorted(fed)
    assert sum(key for _, key in fed) == 3  # the keyframes at 0, 4 (where the stretch starts) and 8 s


def test_constant_size_packets_fall_back_to_decoding_it_all(clips):
    """CBR padding: every inter packet is the same size, so sizes cannot tell still from moving."""
    assert screen(Clip(str(clips["constant"]), Settings()).packets()) is None
    result, frames = analyse(clips["constant"])
    assert result.decoding == "full"
    assert frames >= 0.9 * SCENE.duration * SCENE.fps / 2  # all but non-reference frames
    assert_found(result)


def test_segments_are_screened_on_their_own(clips):
    """A segment of a clip (``start``/``end``, as ``segments`` cuts long clips) is screened from
    its own packets: the event lies in the second one only."""
    first, _ = analyse(clips["camera"], end=4.0)
    second, _ = analyse(clips["camera"], start=4.0)
    assert first.events == [] and second.decoding == "screened"
    assert_found(second)


def test_the_keyframes_checked_come_back_as_soon_as_each_is_decoded(clips, monkeypatch):
    """The screening check stops at the first two keyframes that differ where the sizes did not
    rise (a clip in motion all the time), and the clip is then decoded in full: keyframes a
    decoder takes in before giving those two back (its threads, its reordering) are decoded for
    nothing."""
    sent = []
    decode = Clip._decode
    monkeypatch.setattr(Clip, "_decode", lambda self, packet: sent.append(packet) or decode(self, packet))
    with Clip(str(clips["camera"]), Settings()) as clip:
        keyframes = clip.keyframe_samples(4.0, at_once=True)
        assert [next(keyframes).time for _ in range(2)] == pytest.approx([0.0, 4.0])
    assert len([packet for packet in sent if packet is not None]) == 2


# A person steps into view with the keyframe at 8 s (keyframes every 2 s), stands a moment, then walks off.
APPEARS = Scene(width=WIDTH, height=HEIGHT, duration=16.0, noise=1.0, seed=6, actors=(
    Actor("person", 0.3, ((8.0, 0.3, 0.8), (8.8, 0.3, 0.8), (14.0, 0.7, 0.8)), seed=4),))


@pytest.fixture(scope="module")
def appears(tmp_path_factory):
    folder = tmp_path_factory.mktemp("appears")
    return encode(APPEARS, folder / "appears.mp4", gop=50, options={"crf": "23", "preset": "veryfast"}, threads=1)


def test_someone_already_there_at_a_stretch_s_first_keyframe_is_timed_from_the_keyframe_before(appears):
    """A person steps into view with the keyframe at 8 s (a keyframe's size says nothing of what
    changed), stands a moment, then walks off: the sizes flag only the walk, from 8.5 s, so the
    stretch decoded for it starts from the keyframe at 8 s, which already shows them. The screening
    check sees that keyframe differ from the one checked before it, and the stretch is decoded from
    there instead: the event starts where decoding every frame says (it started halfway between the
    two checked keyframes, at 6 s)."""
    path = appears
    sizes = screen(Clip(str(path), Settings()).packets())
    assert sizes.suspect[0][0] > 8.4  # the sizes do not see them arrive
    screened, _ = analyse(path)
    assert screened.decoding == "screened"
    with Clip(str(path), Settings()) as clip:
        every_frame = analysis.find_events(clip.samples(Options().step), Options())
    assert [(e.start, e.end) for e in screened.events] == [(e.start, e.end) for e in every_frame]
    assert 7.0 < screened.events[0].start <= 8.0, screened.events


def test_a_segment_starting_between_keyframes_checks_its_first_stretch_against_the_keyframe_before(appears):
    """A segment from 7 s (``segments`` cuts long clips where the step's grid says, between keyframes):
    no keyframe comes between its start and the stretch's (8 s, the person already there), so the one
    before the segment (6 s) is what that keyframe is checked against, and the stretch is decoded from
    the segment's start: the event is timed as decoding every frame of the segment times it."""
    screened, _ = analyse(appears, start=7.0)
    assert screened.decoding == "screened"
    with Clip(str(appears), Settings()) as clip:
        every_frame = analysis.find_events(clip.samples(Options().step, 7.0), Options())
    assert [(e.start, e.end) for e in screened.events] == [(e.start, e.end) for e in every_frame]
    assert 7.0 <= screened.events[0].start <= 8.0, screened.events


def test_a_stretch_feeds_the_decoder_nothing_past_its_end(clips, monkeypatch):
    """A threaded decoder takes in several packets before it gives a frame back: a stretch stops
    feeding it once the packets in decoding order pass its end, and drains it instead."""
    sent = []
    decode = Clip._decode
    monkeypatch.setattr(Clip, "_decode", lambda self, packet: sent.append(packet) or decode(self, packet))
    with Clip(str(clips["camera"]), Settings()) as clip:
        samples = list(clip.samples(0.5, 5.0, 7.0))
        base = clip._stream.time_base
    # The frames no other depends on are skipped, so a sample may come a frame after its time.
    assert [s.time for s in samples] == pytest.approx([5.04, 5.52, 6.0, 6.52])
    fed = [float(p.dts * base) for p in sent if p is not None]
    assert max(fed) <= 7.0 + 1e-6 and min(fed) < 4.1  # from the keyframe at 4 s, up to the end


def test_after_a_change_the_sizes_missed_the_rest_is_decoded_in_full(tmp_path):
    """A person runs across between two keyframes (the sizes show it), and later another walks
    slowly across, coded in so few bytes that the sizes miss them while the keyframes show them:
    the sizes are not trusted from the keyframe before that change on, and the rest is decoded in
    full; what came before stays screened. The events are those decoding every frame finds."""
    scene = Scene(width=WIDTH, height=HEIGHT, duration=24.0, noise=1.0, seed=7, actors=(
        crossing("person", 0.35, 6.2, 1.5, 0.92, seed=3, aspect=WIDTH / HEIGHT),
        crossing("person", 0.20, 14.5, 8.0, 0.95, left_to_right=False, seed=8, aspect=WIDTH / HEIGHT)))
    path = encode(scene, tmp_path / "two.mp4", gop=100, options={"crf": "23", "preset": "veryfast"}, threads=1)
    screened, frames = analyse(path)
    with Clip(str(path), Settings()) as clip:
        every_frame = analysis.find_events(clip.samples(Options().step), Options())
        all_frames = clip.frames_decoded
    assert screened.decoding == "screened"
    assert [(e.start, e.end) for e in screened.events] == [(e.start, e.end) for e in every_frame]
    assert abs(screened.events[0].start - 6.2) <= 1.0 and abs(screened.events[1].start - 14.5) <= 1.0, screened.events
    assert frames < 0.9 * all_frames, (frames, all_frames)
