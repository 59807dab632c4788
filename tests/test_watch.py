"""`vimo watch` on real live sources: FFmpeg publishes a clip at real speed as HLS over local HTTP (or
writes a file as it goes), and the watcher must report the clip's events, timed right, while it plays;
reconnect when the stream drops and comes back; and report the open event on Ctrl-C."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import serving, serving_files, write_square_clip

VIMO = Path(sys.executable).with_name("vimo")
FIELDS = {"start", "end", "peak", "score", "label", "box", "start_at", "end_at", "peak_at"}


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def publish(clip: Path, folder: Path, *extra: str) -> tuple[subprocess.Popen, float]:
    """FFmpeg publishing ``clip`` at real speed as a live HLS playlist (1 s segments, all kept) in
    ``folder``; the process and the wall-clock time it started."""
    started = time.time()
    proc = subprocess.Popen([ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c:v", "libx264",
                             "-g", "25", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", *extra,
                             str(folder / "live.m3u8")], stdin=subprocess.DEVNULL)
    return proc, started


class Watcher:
    """``vimo watch`` in a process, each line of its stdout with the wall-clock time it arrived."""

    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([str(VIMO), "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        self.lines: list[tuple[float, str]] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._err = threading.Thread(target=lambda: setattr(self, "stderr", self.proc.stderr.read()), daemon=True)
        self._out.start()
        self._err.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait_for_lines(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._out.join(5)
        self._err.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: answers the first POST 503 (the sender must retry), the others 204."""

    posts: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append((dict(self.headers), body))
        self.send_response(503 if len(type(self).posts) == 1 else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def at(line: dict, name: str) -> float:
    return dt.datetime.fromisoformat(line[f"{name}_at"]).timestamp()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("live-clips")
    write_square_clip(folder / "yard.mp4", seconds=40, moving=((4.0, 7.0), (24.0, 27.0)))
    write_square_clip(folder / "again.mp4", seconds=15, moving=((5.0, 8.0),))
    write_square_clip(folder / "late.mp4", seconds=27, moving=((4.0, 7.0), (21.0, 40.0)))
    return folder


def test_a_live_hls_stream_reports_each_event_as_it_ends(clips, tmp_path):
    live, sheets = tmp_path / "live", tmp_path / "sheets"
    live.mkdir()
    Receiver.posts = []
    with serving_files(live) as url, serving(ThreadingHTTPServer(("127.0.0.1", 0), Receiver)) as hook:
        watcher = Watcher(f"{url}/live.m3u8", "--json", "--read-timeout", "5", "-d", str(sheets), "--sheet-every", "20s",
                          "--webhook", f"{hook}/events", env={"VIMO_WEBHOOK_SECRET": "s3cret"})
        publisher, started = publish(clips / "yard.mp4", live)
        try:
            publisher.wait(60)
            ended = time.time()
            assert watcher.wait(30) == 0, watcher.stderr  # the playlist's end is the stream's: it exits
        finally:
            publisher.kill()
            watcher.kill()
    events = [json.loads(line) for _, line in watcher.lines]
    assert len(events) == 2, watcher.lines
    assert all(set(event) == FIELDS for event in events)
    first, second = events
    # by the stream's timestamps: each 3 s long, 20 s apart (sampled every 0.5 s)
    for event in events:
        assert 2.4 <= event["end"] - event["start"] <= 3.6, event
        assert event["start"] <= event["peak"] <= event["end"]
    assert 19.4 <= second["start"] - first["start"] <= 20.6
    # on the clock: when FFmpeg played those moments (an HLS segment late at most, and the publisher's
    # and the watcher's start-up, which took 3.5 s once on this 2-core machine in a full test run)
    for event, truth in zip(events, (4.0, 24.0)):
        assert -1.0 <= at(event, "start") - (started + truth) <= 4.5, (event, started)
        assert abs((at(event, "end") - at(event, "start")) - (event["end"] - event["start"])) < 0.01
    # reported while the stream plays: the second event's line came before the stream ended
    arrived = watcher.lines[1][0]
    latency = arrived - (started + 27.0)
    print(f"latency from the end of an event to its JSON line: {latency:.1f} s")
    assert arrived < ended and latency < 9.0
    # the webhook got each event, signed, the first one after a retry
    assert len(Receiver.posts) == 3
    delivered = [json.loads(body) for _, body in Receiver.posts[1:]]
    assert delivered == events and json.loads(Receiver.posts[0][1]) == first
    for headers, body in Receiver.posts:
        digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Vimo-Signature"] == f"sha256={digest}" and headers["Content-Type"] == "application/json"
    # a contact sheet per 20 s of the clock with events: the peaks are 20 s apart, so one each
    written = sorted(sheets.iterdir())
    assert len(written) == 2 and all(re.fullmatch(r"live-\d{8}-\d{6}\.jpg", p.name) for p in written)
    for sheet, event in zip(written, events):
        period = dt.datetime.strptime(sheet.name[5:-4], "%Y%m%d-%H%M%S").timestamp()
        assert period <= at(event, "peak") < period + 20 and sheet.read_bytes()[:3] == b"\xff\xd8\xff"


def test_a_stream_that_drops_and_comes_back_is_reconnected(clips, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    with serving_files(live) as url:
        watcher = Watcher(f"{url}/live.m3u8", "--json", "--read-timeout", "3", "--sheet-every", "0")
        publisher, _ = publish(clips / "yard.mp4", live)
        try:
            watcher.wait_for_lines(2, timeout=60)  # both events of the first stream: then it dies
            publisher.kill()
            publisher.wait(10)
            assert len(watcher.lines) == 2, watcher.stderr
            time.sleep(10)  # the playlist stays, stale: reconnections replay its last segments, skipped
            for path in live.iterdir():  # the camera is gone: its playlist too (404)
                path.unlink()
            time.sleep(2)
            publisher, started = publish(clips / "again.mp4", live)
            publisher.wait(60)
            assert watcher.wait(40) == 0, watcher.stderr
        finally:
            publisher.kill()
            watcher.kill()
    events = [json.loads(line) for _, line in watcher.lines]
    assert len(events) == 3, (watcher.lines, watcher.stderr)
    assert "stopped sending; reconnecting" in watcher.stderr and watcher.stderr.count("reconnected") >= 2
    before, after = events[1], events[2]
    # the stream's time goes on across the gap, by the clock: the new stream's event comes as late
    # after the one before as it happened
    assert -1.5 <= at(after, "peak") - (started + 6.5) <= 3.5, (after, started)
    assert abs((after["peak"] - before["peak"]) - (at(after, "peak") - at(before, "peak"))) < 0.01
    assert after["start"] > before["end"] + 5


def test_a_growing_file_and_ctrl_c_reporting_the_open_event(clips, tmp_path):
    growing = tmp_path / "door.ts"
    watcher = Watcher(str(growing), "--read-timeout", "5", "-d", str(tmp_path))  # the file does not exist yet
    time.sleep(0.5)
    writer = subprocess.Popen([ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", "-i", str(clips / "late.mp4"),
                               "-c:v", "libx264", "-g", "25", "-flush_packets", "1", "-f", "mpegts", str(growing)],
                              stdin=subprocess.DEVNULL)
    started = time.time()
    try:
        watcher.wait_for_lines(1, timeout=40)
        assert len(watcher.lines) == 1, watcher.stderr
        time.sleep(max(0.0, started + 26.0 - time.time()))  # someone is still moving when Ctrl-C comes
        interrupted = time.monotonic()
        watcher.proc.send_signal(signal.SIGINT)
        assert watcher.wait(10) == 0, watcher.stderr
        assert time.monotonic() - interrupted < 5
    finally:
        writer.kill()
        watcher.kill()
    lines = [line for _, line in watcher.lines]
    assert len(lines) == 2, (lines, watcher.stderr)
    spans = [re.search(r"\(stream (\d\d):(\d\d):(\d\d)-(\d\d):(\d\d):(\d\d)\)", line).groups() for line in lines]
    starts = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, *_ in spans]
    assert starts[0] in (3, 4) and starts[1] in (20, 21), lines
    assert "stopped" in watcher.stderr
    [sheet] = tmp_path.glob("door-*.jpg")
    assert sheet.read_bytes()[:3] == b"\xff\xd8\xff"


def test_a_source_that_is_not_a_video_fails_and_bad_flags_are_usage_errors(tmp_path):
    text = tmp_path / "broken.mp4"
    text.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    run = subprocess.run([str(VIMO), "watch", str(text), "--read-timeout", "1", "--json"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and run.stdout == ""
    assert "is not a video that can be decoded" in run.stderr
    for args, message in [(("--sheet-every", "soon"), "not a duration"), (("--step", "0"), "step"),
                          (("--read-timeout", "0"), "read-timeout"), (("--interval", "2"), "unrecognized")]:
        run = subprocess.run([str(VIMO), "watch", "rtsp://127.0.0.1:9/none", *args], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)


def test_periods_and_names():
    from vimo.cli import _duration
    from vimo.watch import _source_name

    assert [_duration(text) for text in ("90", "90s", "30m", "1h", "1.5h", "1d", "0")] == \
        [90, 90, 1800, 3600, 5400, 86400, 0]
    assert _source_name("http://127.0.0.1:8080/cam/live.m3u8") == "live"
    assert _source_name("rtsp://user:pw@192.168.1.20:554/") == "192.168.1.20"
    assert _source_name("/var/rec/front door.ts") == "front_door"
