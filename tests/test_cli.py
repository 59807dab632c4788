"""The `vimo` command prints exactly the JSON the API returns, and writes the same contact sheet."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import body_json, invoke, multipart_event

VIMO = Path(sys.executable).with_name("vimo")


def vimo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VIMO), *args], capture_output=True, text=True, timeout=120)


def without_timing(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "elapsed_ms"}


def test_clip_json_is_the_apis(square_clip):
    run = vimo("analyze", str(square_clip), "--json", "--step", "0.25")
    assert run.returncode == 0, run.stderr
    api = body_json(invoke(multipart_event([("clip", ("square.mp4", square_clip.read_bytes(), "video/mp4")),
                                            ("format", "json"), ("step", "0.25")])))
    assert without_timing(json.loads(run.stdout)) == without_timing(api)


def test_frames_with_interval_and_a_montage(square_frames, tmp_path):
    paths = []
    for i, data in enumerate(square_frames):
        paths.append(tmp_path / f"{i:02d}.jpg")
        paths[-1].write_bytes(data)
    montage = tmp_path / "sheet.jpg"
    run = vimo("analyze", *map(str, paths), "--interval", "2", "-o", str(montage))
    assert run.returncode == 0, run.stderr
    [event] = json.loads(run.stdout)["events"]
    assert 3.0 <= event["start"] <= 6.0  # the square is in frames 2 and 3, 2 s apart
    assert montage.read_bytes()[:3] == b"\xff\xd8\xff"


def test_bad_input_is_the_apis_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    run = vimo("analyze", str(junk), "--json")
    assert run.returncode == 2 and json.loads(run.stderr)["error"]["code"] == "not_a_video"
    run = vimo("analyze", str(junk), "--sensitivity", "3")
    assert run.returncode == 2 and json.loads(run.stderr)["error"]["code"] == "bad_option"
