"""The camera's clock: recording times from the container's tags or the start_time option, on every
event to the frame; nothing changes for a clip without one."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import datetime, timedelta, timezone

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from conftest import body_json, invoke, multipart_event
from test_cli import vimo
from vimo import clock
from vimo.analysis import analyze_clip, analyze_frames
from vimo.config import Options, Settings
from vimo.montage import render
from vimo.upload import Part, Upload


def tagged(source, target, *metadata: str):
    """``source`` copied to ``target`` (no re-encode) with ``-metadata`` tags, as a camera writes them."""
    args = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(source)]
    for tag in metadata:
        args += ["-metadata", tag]
    subprocess.run([*args, "-c", "copy", str(target)], check=True)
    return target


def at(start: str, seconds: float) -> datetime:
    return datetime.fromisoformat(start) + timedelta(seconds=seconds)


def check_times(result: dict, start: str, zone_offset: str):
    """Every *_at is the recording start plus that many seconds, to the millisecond, in ``zone_offset``."""
    assert result["video"]["recorded_at"].endswith(zone_offset)
    assert datetime.fromisoformat(result["video"]["recorded_at"]) == datetime.fromisoformat(start)
    assert result["events"]
    for event in result["events"]:
        for name in ("start", "end", "peak"):
            value = event[f"{name}_at"]
            assert value.endswith(zone_offset)
            assert abs(datetime.fromisoformat(value) - at(start, event[name])) <= timedelta(milliseconds=1)
        assert event["label"] == datetime.fromisoformat(event["peak_at"]).strftime("%H:%M:%S")


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_the_containers_creation_time_gives_clock_times(square_clip, tmp_path, suffix):
    clip = tagged(square_clip, tmp_path / f"tagged{suffix}", "creation_time=2026-05-01T12:03:07.000000Z")
    result = analyze_clip(clip, Options(), Settings()).to_dict()
    check_times(result, "2026-05-01T12:03:07+00:00", "+00:00")


def test_start_time_overrides_the_tag_and_keeps_its_offset(square_clip, tmp_path):
    clip = tagged(square_clip, tmp_path / "tagged.mp4", "creation_time=2020-01-01T00:00:00Z")
    result = analyze_clip(clip, Options.parse({"start_time": "2026-05-01T14:03:00.5+02:00"}), Settings()).to_dict()
    check_times(result, "2026-05-01T14:03:00.5+02:00", "+02:00")


def test_timezone_sets_the_offset_shown(square_clip, tmp_path):
    clip = tagged(square_clip, tmp_path / "tagged.mp4", "creation_time=2026-01-15T12:00:00Z")
    result = analyze_clip(clip, Options.parse({"timezone": "America/New_York"}), Settings()).to_dict()
    check_times(result, "2026-01-15T07:00:00-05:00", "-05:00")


def test_a_clip_without_a_recording_time_has_no_clock_fields(square_clip):
    result = analyze_clip(square_clip, Options.parse({"timezone": "Europe/Paris"}), Settings()).to_dict()
    assert "recorded_at" not in result["video"]
    assert result["events"] and not any(k.endswith("_at") for e in result["events"] for k in e)
    assert result["events"][0]["label"] == "00:00:03"


def test_a_burst_counts_from_start_time(square_frames):
    parts = tuple(Part(f, "image/jpeg", f"{i}.jpg") for i, f in enumerate(square_frames))
    options = Options.parse({"interval": "1", "start_time": "2026-05-01T23:59:58Z", "timezone": "Asia/Tokyo"})
    result = analyze_frames(Upload(options=options, frames=parts), Settings()).to_dict()
    check_times(result, "2026-05-02T08:59:58+09:00", "+09:00")


def test_apple_creationdate_with_its_offset_and_unset_times():
    assert clock.container_time({"com.apple.quicktime.creationdate": "2026-05-01T14:03:00+0200",
                                 "creation_time": "2026-05-01T12:03:00.000000Z"}).utcoffset() == timedelta(hours=2)
    assert clock.container_time({"creation_time": "1970-01-01T00:00:00.000000Z"}) is None  # unset
    assert clock.container_time({"creation_time": "9999-12-31T23:59:59Z"}) is None  # nonsense
    assert clock.container_time({"creation_time": "garbage"}, {"DATE_UTC": "2026-05-01 12:00:00"}) == \
        datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def test_a_daylight_saving_change_inside_a_clip_is_counted_in_real_seconds():
    start = clock.recording_start("2026-03-29T00:59:59+00:00", "Europe/London", None)  # clocks go forward at 01:00 UTC
    assert clock.iso(clock.at(start, 2.0)) == "2026-03-29T02:00:01.000+01:00"


def test_the_sheet_shows_the_date_and_clock_times(square_clip):
    result = analyze_clip(square_clip, Options.parse({"start_time": "2026-05-01T14:03:00+02:00"}), Settings())
    sheet = Image.open(io.BytesIO(render(result.events, result.video, "door.mp4", 4, 24, 320)))
    plain = analyze_clip(square_clip, Options(), Settings())
    other = Image.open(io.BytesIO(render(plain.events, plain.video, "door.mp4", 4, 24, 320)))
    header = np.asarray(sheet.convert("L"))[30:52].astype(int)
    assert np.abs(header - np.asarray(other.convert("L"))[30:52]).max() > 100  # the header line differs


@pytest.mark.parametrize("fields, words", [
    ({"start_time": "yesterday"}, "ISO 8601"),
    ({"start_time": "2026-05-01T14:03:00"}, "needs an offset"),
    ({"start_time": "9999-12-31T23:59:59+00:00"}, "1900 to 2999"),
    ({"start_time": "0001-01-01T00:00:00+05:00"}, "1900 to 2999"),
    ({"timezone": "Mars/Olympus"}, "IANA"),
    ({"timezone": "../../etc/passwd"}, "IANA"),
    ({"boxes": "maybe"}, "true or false"),
])
def test_bad_clock_options_are_refused(square_clip, fields, words):
    response = invoke(multipart_event([("clip", ("s.mp4", square_clip.read_bytes(), "video/mp4")), *fields.items()]))
    assert response["statusCode"] == 400
    error = body_json(response)["error"]
    assert error["code"] == "bad_option" and words in error["message"], error


def test_a_naive_start_time_is_read_in_the_timezone():
    options = Options.parse({"start_time": "2026-07-01T09:00:00", "timezone": "Europe/Paris"})
    assert datetime.fromisoformat(options.start_time).utcoffset() == timedelta(hours=2)


def test_the_cli_takes_regions_start_time_and_timezone(square_clip, tmp_path):
    run = vimo("analyze", str(square_clip), "--json", "--region", "0,0.3 0.5,0.3 0.5,0.7 0,0.7",
               "--region", "[[0.5,0.3],[1,0.3],[1,0.7]]", "--exclude", "0,0 1,0 1,0.1",
               "--start-time", "2026-05-01T14:03:00+02:00", "--timezone", "UTC")
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["video"]["recorded_at"] == "2026-05-01T12:03:00.000+00:00"
    assert payload["events"] and payload["events"][0]["start_at"].startswith("2026-05-01T12:03:0")
    run = vimo("analyze", str(square_clip), "--json", "--region", "0,0 1,0 1,0.2 0,0.2")  # above the square
    assert run.returncode == 0 and json.loads(run.stdout)["events"] == []
    run = vimo("analyze", str(square_clip), "--json", "--region", "0,0 1,0")
    assert run.returncode == 2 and "at least 3" in run.stderr
