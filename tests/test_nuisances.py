"""What camera owners get false alarms from, rendered by ``test_data/scenes.py`` and encoded as a
camera would: no event where nothing moves, the real motion found and timed within a second where
something does, and the timeline saying why the rest was set aside.

Each clip is small (480x270, 10 fps) so that rendering stays a few seconds; the quality benchmark
(bench/quality.py) runs the same nuisances at 640x360, with real motion in each, and leaves in
gusts in a small, low-quality clip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import TEST_DATA
from vimo.analysis import analyze_clip
from vimo.config import Options, Settings

sys.path.insert(0, str(TEST_DATA))
from scenes import Scene, Tree, crossing, encode  # noqa: E402

TOLERANCE = 1.0
W, H = 480, 270
HEDGES = (Tree((0.0, 0.45, 0.3, 0.7), amplitude=2.0, frequency=0.8, seed=3, gusts=1.0),
          Tree((0.62, 0.40, 1.0, 0.68), amplitude=2.5, frequency=0.6, seed=4, gusts=1.0))


def clip(tmp_path_factory, name: str, scene: Scene, **encoding) -> tuple[Path, list]:
    """The scene encoded on one thread: byte for byte the same clip every run (with several, x264
    decides by thread timing, and a 150 kbit/s clip of leaves in gusts once gave a 0.2 s event)."""
    path = tmp_path_factory.mktemp("nuisance") / f"{name}.mp4"
    encode(scene, path, **{"bitrate": 500_000, "threads": 1, **encoding})
    return path, scene.truth()


def analyse(path: Path, step: float = 0.5) -> dict:
    return analyze_clip(path, Options(timeline=True, step=step), Settings()).to_dict()


def assert_found(result: dict, truth: list) -> None:
    events = [(e["start"], e["end"], e["peak"]) for e in result["events"]]
    assert len(events) == len(truth), (events, truth)
    for (start, end, peak), (t_start, t_end) in zip(events, truth):
        assert abs(start - t_start) <= TOLERANCE and abs(end - t_end) <= TOLERANCE, (events, truth)
        assert start <= peak <= end


def reasons(result: dict) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for t, _, _, reason in result["timeline"]["samples"]:
        if reason:
            found.setdefault(reason, []).append(t)
    return found


@pytest.fixture(scope="module")
def clock_clips(tmp_path_factory):
    """A burnt-in clock ticking over a still street for 24 s: the seconds change every second, the
    tens every ten, the minutes and the hour roll over at 13 s. With the encoder's long GOP, and
    with a keyframe a second (screened once a second: the digits change at every sample)."""
    scene = Scene(width=W, height=H, duration=24.0, fps=10.0, noise=2.0, seed=301, clock=True)
    return [clip(tmp_path_factory, "clock", scene)[0], clip(tmp_path_factory, "clock_gop", scene, gop=10)[0]]


@pytest.mark.parametrize("which", [0, 1], ids=["long_gop", "gop_1s"])
@pytest.mark.parametrize("step", [0.5, 1.0])
def test_a_ticking_clock_is_no_motion(clock_clips, which, step):
    result = analyse(clock_clips[which], step)
    assert result["events"] == [], result["events"]


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    """The auto-exposure steps +0.8 stops at 5 s and -1 at 10 s, each in one frame; in the second
    clip a person crosses 6-12 s, through the second step."""
    steps = ((5.0, 0.8), (10.0, -1.0))
    still = Scene(width=W, height=H, duration=16.0, fps=10.0, noise=2.0, seed=302, exposure=steps)
    person = Scene(width=W, height=H, duration=16.0, fps=10.0, noise=2.0, seed=303, exposure=steps,
                   actors=(crossing("person", 0.35, 6.0, 6.0, 0.9, seed=1, aspect=W / H),))
    return clip(tmp_path_factory, "exposure", still), clip(tmp_path_factory, "exposure_person", person)


def test_an_exposure_step_is_no_motion_and_is_shown_as_lighting(exposure):
    (path, truth), _ = exposure
    result = analyse(path)
    assert_found(result, truth)
    assert [round(t) for t in reasons(result)["lighting"]] == [5, 10]


def test_a_person_walking_through_an_exposure_step_is_found_and_timed(exposure):
    _, (path, truth) = exposure
    result = analyse(path)
    assert_found(result, truth)
    assert [round(t) for t in reasons(result)["lighting"]] == [5, 10]


@pytest.fixture(scope="module")
def night_mode(tmp_path_factory):
    """The infrared night mode switches on at 8 s (grey, brighter, grainier, leaves turned white) and
    off at 18 s, over hedges in gusts and a ticking clock; in the second clip a car crosses 6.5-9.5 s,
    through the switch."""
    common = dict(width=W, height=H, duration=26.0, fps=10.0, noise=2.0, trees=HEDGES, ir=((8.0, 18.0),), clock=True)
    still = Scene(seed=304, **common)
    car = Scene(seed=305, actors=(crossing("car", 0.2, 6.5, 3.0, 0.95, seed=2, aspect=W / H),), **common)
    return clip(tmp_path_factory, "ir", still), clip(tmp_path_factory, "ir_car", car)


@pytest.mark.parametrize("which", [0, 1], ids=["still", "car"])
def test_a_night_mode_switch_is_no_motion_and_is_shown_as_a_camera_switch(night_mode, which):
    path, truth = night_mode[which]
    result = analyse(path)
    assert_found(result, truth)
    assert [round(t) for t in reasons(result)["camera_switch"]] == [8, 18]


@pytest.fixture(scope="module")
def pumping(tmp_path_factory):
    """Sunlight comes and goes with the clouds while the auto-exposure chases it, over hedges in
    gusts and a burnt-in clock."""
    scene = Scene(width=W, height=H, duration=22.0, fps=10.0, noise=2.0, trees=HEDGES, pumping=0.7, clock=True, seed=306)
    return clip(tmp_path_factory, "pumping", scene)


def test_pumping_sunlight_is_no_motion_and_is_shown_as_lighting(pumping):
    path, truth = pumping
    result = analyse(path)
    assert_found(result, truth)
    assert len(reasons(result)["lighting"]) >= 3


@pytest.fixture(scope="module")
def gusty(tmp_path_factory):
    """Leaves filling most of a small, low-quality view (426x240 at 150 kbit/s), swaying in gusts
    for 20 s; in the second clip a person walks past them, across the view, 9-17 s."""
    w, h = 426, 240
    leaves = (Tree((-0.1, -0.1, 0.55, 0.75), amplitude=4.0, frequency=0.5, seed=5, gusts=1.0),
              Tree((0.45, -0.05, 1.1, 0.7), amplitude=4.5, frequency=0.6, seed=6, gusts=1.0))
    scene = dict(width=w, height=h, duration=20.0, fps=10.0, trees=leaves, noise=3.0)
    still = Scene(seed=321, **scene)
    person = Scene(seed=322, actors=(crossing("person", 0.40, 9.0, 8.0, 0.97, left_to_right=False, seed=35,
                                              aspect=w / h),), **scene)
    return (clip(tmp_path_factory, "gusty", still, bitrate=150_000),
            clip(tmp_path_factory, "gusty_person", person, bitrate=150_000))


@pytest.mark.parametrize("which", [0, 1], ids=["leaves", "person"])
def test_leaves_in_gusts_are_no_motion_and_a_person_walking_past_them_is_found_and_timed(gusty, which):
    path, truth = gusty[which]
    assert (truth != []) == bool(which)
    result = analyse(path)
    assert_found(result, truth)
    assert "usual" in reasons(result)  # the leaves, shown as what always moves there
