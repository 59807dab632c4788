"""Detection against ground truth, on the committed synthetic media in ``test_data/``.

``test_data/make_test_data.py`` renders those files from scene descriptions and records in
``test_data/truth.json`` when something really moved. These tests hold vimo to that truth with
the tolerance a sampled detector can honestly meet (default step 0.5 s, bursts 1 s apart):

* the same number of events as the truth, each start and end within ``TOLERANCE`` seconds;
* no events at all on the motion-free clips (noise + lighting drift, a dark noisy night);
* sizes as displayed (a portrait phone clip comes out taller than wide), and times from
  timestamps (the VFR clip's nominal rate is wrong on purpose);
* every committed container/codec decodes, both through PyAV directly and through vimo.

Some of these may fail while the detector is being tuned: the assertion messages print what vimo
found next to the truth, which is the point of having them.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from conftest import TEST_DATA, body_json, invoke, multipart_event
from vimo.analysis import analyze_clip, analyze_frames
from vimo.config import Options, Settings
from vimo.upload import Part, Upload

TOLERANCE = 1.0  # seconds; sampling every 0.5 s (or 1 s for bursts) cannot place an edge better
TRUTH: dict[str, dict] = json.loads((TEST_DATA / "truth.json").read_text())
CLIPS = sorted(name for name, t in TRUTH.items() if "frames" not in t)
BURSTS = sorted(name for name, t in TRUTH.items() if "frames" in t and len(t["frames"]) > 1)
STILL_CLIPS = [name for name in CLIPS if name.startswith("still_")]
MIME = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska", ".webm": "video/webm",
        ".avi": "video/x-msvideo", ".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def spans(events: list[dict]) -> list[tuple[float, float]]:
    return [(round(e["start"], 2), round(e["end"], 2)) for e in events]


def assert_events_match(detected: list[dict], truth: list[list[float]], what: str) -> None:
    """Same count, and the i-th detected event starts and ends within TOLERANCE of the i-th truth."""
    found = spans(detected)
    assert len(found) == len(truth), f"{what}: detected {found}, truth {truth}"
    for (start, end), (t_start, t_end) in zip(found, truth):
        assert abs(start - t_start) <= TOLERANCE and abs(end - t_end) <= TOLERANCE, \
            f"{what}: detected {found}, truth {truth} (tolerance {TOLERANCE} s)"


@pytest.fixture(scope="module")
def clip_results() -> dict[str, dict]:
    """Each committed clip analysed once with default options (analysis is most of the suite's time)."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = analyze_clip(TEST_DATA / name, Options(), Settings()).to_dict()
        return cache[name]

    return get


def burst_upload(name: str) -> Upload:
    truth = TRUTH[name]
    parts = tuple(Part((TEST_DATA / f).read_bytes(), MIME[Path(f).suffix], Path(f).name) for f in truth["frames"])
    return Upload(options=Options(interval=truth["interval"]), frames=parts)


# -- every file decodes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIPS)
def test_container_and_codec_decode_with_pyav(name):
    """PyAV (the same FFmpeg build vimo uses) reads every frame, with the codec truth.json names."""
    with av.open(str(TEST_DATA / name)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == TRUTH[name]["codec"]
        frames = list(container.decode(stream))
    assert len(frames) > 10
    assert frames[0].rotation % 360 == TRUTH[name]["rotation"]


@pytest.mark.parametrize("name", CLIPS)
def test_vimo_reports_codec_and_displayed_size(name, clip_results):
    video = clip_results(name)["video"]
    truth = TRUTH[name]
    assert (video["codec"], video["width"], video["height"]) == (truth["codec"], truth["width"], truth["height"])
    assert video["frames_analyzed"] > 0


# -- events against the truth ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIPS)
def test_clip_events_match_truth(name, clip_results):
    assert_events_match(clip_results(name)["events"], TRUTH[name]["events"], name)


@pytest.mark.parametrize("name", STILL_CLIPS)
def test_motion_free_clips_have_no_events(name, clip_results):
    """Noise and a 20 % lighting drift, or a dark grainy night, are not motion."""
    assert clip_results(name)["events"] == [], f"{name}: false events {spans(clip_results(name)['events'])}"


def test_portrait_clip_is_upright(clip_results):
    """The phone stores the picture sideways with rotation 90: vimo must report it as displayed."""
    video = clip_results("portrait_rot90.mp4")["video"]
    assert video["width"] < video["height"], video


def test_vfr_clip_times_come_from_timestamps(clip_results):
    """vfr.mkv claims 30 fps but holds 3 fps for its first 6 s: frame index / rate would be seconds off."""
    result = clip_results("vfr.mkv")
    [(t_start, t_end)] = TRUTH["vfr.mkv"]["events"]
    assert_events_match(result["events"], TRUTH["vfr.mkv"]["events"], "vfr.mkv")
    assert all(t_start - TOLERANCE <= e["peak"] <= t_end + TOLERANCE for e in result["events"])
    assert abs(result["video"]["duration"] - 12.0) < 0.5, result["video"]


@pytest.mark.parametrize("name", BURSTS)
def test_burst_events_match_truth(name):
    result = analyze_frames(burst_upload(name), Settings()).to_dict()
    truth = TRUTH[name]
    assert (result["video"]["width"], result["video"]["height"]) == (truth["width"], truth["height"])
    assert result["video"]["frames_analyzed"] == len(truth["frames"])
    assert_events_match(result["events"], truth["events"], name)


def test_single_webp_frame_decodes_without_events():
    result = analyze_frames(burst_upload("frame.webp"), Settings()).to_dict()
    assert result["events"] == []
    assert (result["video"]["width"], result["video"]["height"]) == (640, 360)


# -- the same through the Lambda handler -------------------------------------------------------------


def test_clip_through_handler_matches_truth():
    name = "walk_h264.mp4"
    event = multipart_event([("clip", (name, (TEST_DATA / name).read_bytes(), MIME[".mp4"])), ("format", "json")])
    response = invoke(event)
    assert response["statusCode"] == 200, response.get("body")
    payload = body_json(response)
    assert_events_match(payload["events"], TRUTH[name]["events"], f"{name} via handler")


def test_portrait_clip_through_handler_is_upright():
    name = "portrait_rot90.mp4"
    event = multipart_event([("clip", (name, (TEST_DATA / name).read_bytes(), MIME[".mp4"])), ("format", "json")])
    payload = body_json(invoke(event))
    assert (payload["video"]["width"], payload["video"]["height"]) == (270, 480)
    assert_events_match(payload["events"], TRUTH[name]["events"], f"{name} via handler")


def test_burst_through_handler_matches_truth():
    truth = TRUTH["burst"]
    fields = [("frame", (Path(f).name, (TEST_DATA / f).read_bytes(), "image/jpeg")) for f in truth["frames"]]
    payload = body_json(invoke(multipart_event(fields + [("format", "json"), ("interval", "1")])))
    assert_events_match(payload["events"], truth["events"], "burst via handler")
