"""The `vimo` command prints exactly the JSON the API returns, and writes the same contact sheet;
it takes many clips at once (files, folders, globs), and its flags are spelt as other tools' are."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_DATA, body_json, invoke, multipart_event, write_square_clip

VIMO = Path(sys.executable).with_name("vimo")


def vimo(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(VIMO), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def without_timing(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k not in ("elapsed_ms", "file", "sheet")}


def test_clip_json_is_the_apis(square_clip):
    run = vimo("analyze", str(square_clip), "--json", "--step", "0.25")
    assert run.returncode == 0, run.stderr
    api = body_json(invoke(multipart_event([("clip", ("square.mp4", square_clip.read_bytes(), "video/mp4")),
                                            ("format", "json"), ("step", "0.25")])))
    [line] = run.stdout.splitlines()
    assert json.loads(line)["file"] == str(square_clip)
    assert without_timing(json.loads(line)) == without_timing(api)


def test_frames_with_interval_and_a_montage(square_frames, tmp_path):
    paths = []
    for i, data in enumerate(square_frames):
        paths.append(tmp_path / f"{i:02d}.jpg")
        paths[-1].write_bytes(data)
    montage = tmp_path / "sheet.jpg"
    run = vimo("analyze", *map(str, paths), "--interval", "2", "-o", str(montage), "--json")
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout)
    [event] = line["events"]
    assert 3.0 <= event["start"] <= 6.0  # the square is in frames 2 and 3, 2 s apart
    assert line["files"] == list(map(str, paths)) and line["sheet"] == str(montage)
    assert montage.read_bytes()[:3] == b"\xff\xd8\xff"


def test_a_broken_clip_fails_with_its_error_and_a_bad_option_is_a_usage_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    run = vimo("analyze", str(junk), "--json")
    assert run.returncode == 1
    assert json.loads(run.stdout) == {"file": str(junk), "error": {"code": "not_a_video", "message": json.loads(
        run.stdout)["error"]["message"]}}
    run = vimo("analyze", str(junk), "--sensitivity", "3")
    assert run.returncode == 2 and run.stdout == ""
    assert "Option 'sensitivity' must be between 0 and 1" in run.stderr


# -- flags -----------------------------------------------------------------------------------------------


def test_dashed_flags_with_the_old_spellings_as_hidden_aliases(square_clip, tmp_path):
    dashed = vimo("analyze", str(square_clip), "--json", "--tile-width", "160", "--max-tiles", "1",
                  "-o", str(tmp_path / "dashed.jpg"))
    old = vimo("analyze", str(square_clip), "--json", "--tile_width", "160", "--max_tiles", "1",
               "-o", str(tmp_path / "old.jpg"))
    assert dashed.returncode == old.returncode == 0, dashed.stderr + old.stderr
    assert without_timing(json.loads(dashed.stdout)) == without_timing(json.loads(old.stdout))
    from PIL import Image

    with Image.open(tmp_path / "dashed.jpg") as sheet:  # one tile of 160 px: the sheet's minimum width, 480
        assert sheet.width == 480
    help_text = vimo("analyze", "--help").stdout
    assert "--tile-width" in help_text and "--max-tiles" in help_text and "--output-dir" in help_text
    assert "--tile_width" not in help_text and "--max_tiles" not in help_text
    assert "exit status: 0" in help_text
    assert "--tile-width" in vimo("watch", "--help").stdout


def test_version_and_usage_errors_exit_2(square_clip, tmp_path):
    from vimo import __version__

    run = vimo("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"vimo {__version__}"
    image = TEST_DATA / "burst" / "01.jpg"
    for args, message in [(("analyze", str(square_clip), "--tile-width", "9"), "tile_width"),
                          (("analyze", str(square_clip), "--no-such-flag"), "unrecognized arguments"),
                          (("analyze", str(tmp_path / "missing.mp4")), "no such file"),
                          (("analyze", str(tmp_path / "*.mkv")), "matches no file"),
                          (("analyze", str(square_clip), str(image)), "cannot mix clips and images"),
                          (("analyze", str(square_clip), str(square_clip.parent / "x.mp4"), "-o", "a.jpg"), "no such"),
                          (("analyze",), "required")]:
        run = vimo(*args)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
        assert run.stdout == ""


# -- many clips at once ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """A camera's folder: two good clips (one in a day's subfolder, under the same name as a clip of
    another day), one broken, a note that is not a clip."""
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "day1").mkdir()
    (folder / "day2").mkdir()
    write_square_clip(folder / "day1" / "0001.mp4", seconds=5, moving=((1.0, 3.0),))
    write_square_clip(folder / "day2" / "0001.mp4", seconds=5, moving=())
    write_square_clip(folder / "front door.mp4", seconds=6, moving=((3.0, 5.0),), codec="mpeg4")
    (folder / "day2" / "0002.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"truncated" * 50)
    (folder / "notes.txt").write_text("not a clip")
    return folder


def test_a_folder_as_json_lines_with_a_sheet_per_clip_and_a_broken_clip(recordings, tmp_path):
    out = tmp_path / "sheets"
    run = vimo("analyze", str(recordings), "--json", "--output-dir", str(out), "--workers", "2")
    assert run.returncode == 1, run.stderr  # one clip failed; the others were still analysed
    lines = [json.loads(text) for text in run.stdout.splitlines()]
    by_file = {Path(line["file"]).relative_to(recordings).as_posix(): line for line in lines}
    assert sorted(by_file) == ["day1/0001.mp4", "day2/0001.mp4", "day2/0002.mp4", "front door.mp4"]
    assert by_file["day2/0002.mp4"]["error"]["code"] == "not_a_video"
    [moving] = by_file["day1/0001.mp4"]["events"]
    assert 0.5 <= moving["start"] <= 1.5 and 2.5 <= moving["end"] <= 3.5
    assert by_file["day2/0001.mp4"]["events"] == []
    [door] = by_file["front door.mp4"]["events"]
    assert 2.5 <= door["start"] <= 3.5
    # each line is the API's JSON for that clip
    alone = vimo("analyze", str(recordings / "front door.mp4"), "--json")
    assert without_timing(json.loads(alone.stdout)) == without_timing(by_file["front door.mp4"])
    # one sheet per clip, named after it; same-named clips of two folders apart
    assert sorted(p.name for p in out.iterdir()) == ["day1-0001.jpg", "day2-0001.jpg", "front door.jpg"]
    assert by_file["front door.mp4"]["sheet"] == str(out / "front door.jpg")
    assert all((out / name).read_bytes()[:3] == b"\xff\xd8\xff" for name in ["day1-0001.jpg", "front door.jpg"])


def test_globs_one_worker_and_the_table(recordings, tmp_path):
    # a quoted glob is expanded by vimo itself; one worker analyses the clips one after another
    run = vimo("analyze", str(recordings / "day*" / "*.mp4"), "-j", "1", cwd=tmp_path)
    assert run.returncode == 1
    table = run.stdout.splitlines()
    assert table[0].split() == ["clip", "duration", "events", "time", "sheet"]
    rows = {row.split()[0]: row for row in table[1:-1]}
    assert len(table) == 5 and table[-1] == "3 clips, 1 event, 1 failed"
    assert "FAILED not_a_video" in rows["0002.mp4"]
    assert "vimo: " in run.stderr and "0002.mp4: not_a_video" in run.stderr  # told at once, too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day1-0001.jpg", "day2-0001.jpg"]  # default: here
    assert any(row.split()[1:3] == ["00:00:05", "1"] and row.endswith("day1-0001.jpg") for row in table[1:-1])


# -- progress --------------------------------------------------------------------------------------------


def on_a_terminal(*args: str, env: dict | None = None, cwd=None, timeout: float = 120) -> tuple[str, str, int]:
    """vimo with its stderr on a pseudo-terminal of 100x30 (stdout on a pipe, as `vimo ... > out`):
    what it printed on stdout, what the terminal showed, and the exit status."""
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([str(VIMO), *args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    os.close(slave)
    shown = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        reader.join(10)
        os.close(master)
    return stdout.decode(), b"".join(shown).decode(errors="replace"), proc.returncode


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two")
    write_square_clip(folder / "porch.mp4", seconds=8, moving=((2.0, 4.0),))
    write_square_clip(folder / "yard.mp4", seconds=12, moving=((6.0, 8.0),))
    return folder


BAR = r"{name} +100%\|[^|]*\| {seconds}/{seconds} s of video \[\d\d:\d\d<\d\d:\d\d, +[\d.]+s/s\]"


def test_progress_bars_on_a_terminal_overall_and_per_clip(two_clips, tmp_path):
    import re

    stdout, terminal, code = on_a_terminal("analyze", str(two_clips), "--json", "-d", str(tmp_path), "-j", "2")
    assert code == 0, terminal
    assert sorted(Path(json.loads(line)["file"]).name for line in stdout.splitlines()) == ["porch.mp4", "yard.mp4"]
    # the batch's bar ends at 100 % of the 20 s of video, with the rate and the time left
    assert re.search(BAR.format(name="2 clips", seconds=20), terminal), terminal
    assert re.search(r"porch\.mp4 +\d+%\|", terminal) and re.search(r"yard\.mp4 +\d+%\|", terminal), terminal


def test_progress_of_one_long_clip_cut_into_segments(two_clips, tmp_path):
    import re

    stdout, terminal, code = on_a_terminal("analyze", str(two_clips / "yard.mp4"), "-j", "2", cwd=tmp_path,
                                           env={"FANOUT_THRESHOLD": "4", "SEGMENT_SECONDS": "3"})
    assert code == 0, terminal
    assert re.search(BAR.format(name=r"yard\.mp4", seconds=12), terminal), terminal
    assert stdout.splitlines()[1].split()[:3] == ["yard.mp4", "00:00:12", "1"]


def test_segments_report_the_seconds_done_summed_over_the_pool(two_clips):
    """The relay of runners.run_local: every segment's progress reaches the parent, summed."""
    from vimo.config import Options, Settings
    from vimo.runners import run_local

    seen = []
    result = run_local(str(two_clips / "yard.mp4"), Options(), Settings(segment_seconds=3), 12.0, workers=2,
                       progress=seen.append)
    assert len(result.events) == 1
    assert seen and all(0 <= s <= 12.5 for s in seen) and max(seen) > 4  # past one segment's 3 s


def test_no_bars_on_a_pipe_nor_with_quiet(two_clips, tmp_path):
    run = vimo("analyze", str(two_clips), "--json", "-j", "2")
    assert run.returncode == 0 and run.stderr == ""
    assert len(run.stdout.splitlines()) == 2
    stdout, terminal, code = on_a_terminal("analyze", str(two_clips), "--json", "--quiet")
    assert code == 0 and terminal == "" and len(stdout.splitlines()) == 2
