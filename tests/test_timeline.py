"""``timeline=true``: every compared sample's motion, hit and reason, on every path a clip or a burst
takes (keyframe pass with re-timed edges, full decode, a long clip's segments on a pool and over
Lambda's wire, frame bursts), on the API, the CLI and in the JSON body."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import body_json, invoke, multipart_event, write_square_clip
from vimo import analysis, runners, segments
from vimo.analysis import analyze_clip, analyze_frames
from vimo.config import Options, Settings
from vimo.upload import Part, Upload

TIMELINE = Options(timeline=True)


def rows(result) -> list[list]:
    return result.to_dict()["timeline"]["samples"]


def assert_consistent(result) -> None:
    """Rows in time order, one per time, and every event's peak is a hit among them."""
    data = result.to_dict()
    assert data["timeline"]["fields"] == ["t", "score", "hit", "reason"]
    samples = data["timeline"]["samples"]
    times = [r[0] for r in samples]
    assert times == sorted(set(times))
    hits = {r[0] for r in samples if r[2]}
    for event in data["events"]:
        assert any(abs(event["peak"] - t) < 1e-3 for t in hits), (event, samples)
    assert all(r[3] in (None, "lighting", "camera_switch", "usual", "transient") for r in samples)
    assert all(r[3] is None for r in samples if r[2]), "a hit is never set aside"


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory) -> Path:
    """12 s, a keyframe every 12 frames (0.48 s): events are found among keyframes a second apart,
    their edges re-timed from the keyframes between."""
    return write_square_clip(tmp_path_factory.mktemp("tl") / "gop.mp4", seconds=12.0,
                             moving=((2.2, 5.2), (8.5, 10.5)), size=(160, 120), gop=12)


@pytest.fixture(scope="module")
def long_gop_clip(tmp_path_factory) -> Path:
    """The encoder's default GOP: decoded in full, a sample every step."""
    return write_square_clip(tmp_path_factory.mktemp("tl") / "full.mp4", seconds=8.0, moving=((2.0, 4.0),),
                             size=(160, 120))


def test_no_timeline_unless_asked(gop_clip):
    assert "timeline" not in analyze_clip(gop_clip, Options(), Settings()).to_dict()


def test_keyframe_pass_with_re_timed_edges(gop_clip):
    result = analyze_clip(gop_clip, TIMELINE, Settings())
    assert_consistent(result)
    times = [r[0] for r in rows(result)]
    assert len(result.events) == 2
    # The first pass screened a keyframe a second; the edges were re-timed from the keyframes around them.
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    assert set(gaps) <= {0.48, 0.96, 1.44} and 0.48 in gaps and gaps.count(0.96) >= 3, times
    assert len(times) <= result.video.frames_analyzed  # a keyframe looked at again is one row


def test_full_decode(long_gop_clip, monkeypatch):
    monkeypatch.setattr(analysis, "screen", lambda packets: None)  # packet sizes that say nothing
    result = analyze_clip(long_gop_clip, TIMELINE, Settings())
    assert result.decoding == "full"
    assert_consistent(result)
    times = [r[0] for r in rows(result)]
    assert len(times) == 16 and all(b - a == pytest.approx(0.5, abs=0.1) for a, b in zip(times, times[1:]))


def test_screened_decode(long_gop_clip):
    """Screened by packet sizes: a row for every sample compared, a step apart where the sizes
    showed motion (2-4 s), the hits only there."""
    result = analyze_clip(long_gop_clip, TIMELINE, Settings())
    assert result.decoding == "screened"
    assert_consistent(result)
    samples = rows(result)
    times = [r[0] for r in samples]
    assert times == sorted(set(times)) and len(times) < 16
    hits = [r[0] for r in samples if r[2]]
    assert hits and all(1.5 <= t <= 4.6 for t in hits)
    assert all(b - a == pytest.approx(0.5, abs=0.1) for a, b in zip(hits, hits[1:]))


def test_segments_on_a_pool_give_the_serial_timeline(gop_clip):
    serial = analyze_clip(gop_clip, TIMELINE, Settings())
    pooled = runners.analyze(gop_clip, TIMELINE, Settings(segment_seconds=2.0, workers=2, fanout_threshold=5.0))
    assert_consistent(pooled)
    serial_hits = {r[0] for r in rows(serial) if r[2]}
    pooled_hits = {r[0] for r in rows(pooled) if r[2]}
    assert {round(r[0]) for r in rows(pooled)} >= set(range(12))  # every second of the clip is there
    assert len(serial_hits ^ pooled_hits) <= 4, (serial_hits, pooled_hits)  # segments re-time edges alone


def test_segments_over_the_lambda_wire(gop_clip):
    plan = [(0.0, 6.0), (6.0, math.inf)]
    results = [segments.result_from_dict(json.loads(json.dumps(segments.result_to_dict(
        analyze_clip(gop_clip, TIMELINE, Settings(), start=s, end=e), max_tiles=4)))) for s, e in plan]
    combined = segments.combine(results, plan, TIMELINE, 0)
    assert_consistent(combined)
    assert rows(combined)[-1][0] > 11 and rows(combined)[0][0] == 0.0


def test_bursts(square_frames):
    frames = tuple(Part(data, "image/jpeg", f"{i}.jpg") for i, data in enumerate(square_frames))
    result = analyze_frames(Upload(options=Options(timeline=True, interval=2.0), frames=frames), Settings())
    assert_consistent(result)
    assert [r[0] for r in rows(result)] == [2.0 * i for i in range(len(frames))]
    assert sum(r[2] for r in rows(result)) >= 1


def test_api_form_field_query_and_json_body(square_clip):
    clip = ("square.mp4", square_clip.read_bytes(), "video/mp4")
    data = body_json(invoke(multipart_event([("clip", clip), ("format", "json"), ("timeline", "true")])))
    assert len(data["timeline"]["samples"]) >= 10
    data = body_json(invoke(multipart_event([("clip", clip), ("format", "json"), ("timeline", "false")])))
    assert "timeline" not in data
    refused = invoke(multipart_event([("clip", clip), ("format", "json"), ("timeline", "maybe")]))
    assert refused["statusCode"] == 400 and body_json(refused)["error"]["code"] == "bad_option"


def test_json_body_takes_a_boolean():
    from conftest import gateway_event
    from vimo.upload import parse_event

    key = "uploads/2024/01/01/" + "0" * 32
    for value in (True, False):
        body = json.dumps({"s3_key": key, "format": "json", "timeline": value})
        upload = parse_event(gateway_event(body, "application/json"), Settings())
        assert upload.options.timeline is value and upload.source == {"s3_key": key}


def test_cli_flag(square_clip):
    vimo = Path(sys.executable).with_name("vimo")
    run = subprocess.run([str(vimo), "analyze", str(square_clip), "--json", "--timeline"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["timeline"]["fields"] == ["t", "score", "hit", "reason"]
