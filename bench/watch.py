"""`vimo watch` on a long live stream: its memory over time, and how late each event's JSON line comes.

Usage::

    nice .venv/bin/python bench/watch.py --minutes 60      # an hour of live HLS, in real time
    nice .venv/bin/python bench/watch.py --minutes 3       # a quick look

FFmpeg publishes a 40 s clip (640x480 H.264, 25 fps; a textured scene a dark square crosses at 4-7 s
and 24-27 s) looped for ``--minutes`` as a live HLS playlist at real speed (1 s segments, the last 10
kept, older ones deleted), served over HTTP on 127.0.0.1; ``vimo watch --json --sheet-every 10m``
follows it. Every ``--every`` seconds the script prints the watcher's resident memory (VmRSS from
/proc) and the events so far; at the end, the latency from the true end of each event (by the
publisher's clock) to the moment its JSON line arrived: median and worst. The script measures;
the tests assert.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conftest import serving_files, write_square_clip  # noqa: E402

LOOP = 40.0
ENDS = (7.0, 27.0)  # each loop's events end here


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--every", type=float, default=300, help="seconds between memory readings")
    args = parser.parse_args()
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = write_square_clip(tmp / "loop.mp4", seconds=LOOP, moving=((4.0, 7.0), (24.0, 27.0)), size=(640, 480))
        live = tmp / "live"
        live.mkdir()
        with serving_files(live) as url:
            started = time.time()
            publisher = subprocess.Popen(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                 "-i", str(clip), "-t", str(args.minutes * 60), "-c:v", "libx264", "-preset", "veryfast", "-g", "25",
                 "-f", "hls", "-hls_time", "1", "-hls_list_size", "10", "-hls_flags", "delete_segments",
                 str(live / "live.m3u8")], stdin=subprocess.DEVNULL)
            watcher = subprocess.Popen([str(Path(sys.executable).with_name("vimo")), "watch", f"{url}/live.m3u8",
                                        "--json", "--sheet-every", "10m", "-d", str(tmp / "sheets")],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            lines: list[tuple[float, dict]] = []
            reader = threading.Thread(target=lambda: lines.extend((time.time(), json.loads(text))
                                                                  for text in watcher.stdout), daemon=True)
            reader.start()
            print(f"{'minute':>6} {'VmRSS MB':>9} {'events':>7}", flush=True)
            try:
                while publisher.poll() is None:
                    print(f"{(time.time() - started) / 60:6.1f} {rss_mb(watcher.pid):9.1f} {len(lines):7d}", flush=True)
                    deadline = time.monotonic() + args.every
                    while publisher.poll() is None and time.monotonic() < deadline:
                        time.sleep(1)
                print(f"{(time.time() - started) / 60:6.1f} {rss_mb(watcher.pid):9.1f} {len(lines):7d}  (stream over)",
                      flush=True)
                watcher.wait(120)
            finally:
                publisher.kill()
                watcher.kill()
            reader.join(10)
        sheets = sorted(p.name for p in (tmp / "sheets").glob("*.jpg"))
    # Latency: each event is matched with the true end nearest its own (the stream's time is the
    # publisher's, from the first frame the watcher saw; it joined at the start).
    latencies = []
    for arrived, event in lines:
        loop, into = divmod(event["end"], LOOP)
        truth = min(ENDS, key=lambda end: abs(end - into))
        latencies.append(arrived - (started + loop * LOOP + truth))
    expected = int(args.minutes * 60 // LOOP) * 2
    print(f"events: {len(lines)} (the stream held {expected}+); sheets written: {len(sheets)}")
    if latencies:
        print(f"latency, end of an event -> its JSON line: median {statistics.median(latencies):.1f} s, "
              f"worst {max(latencies):.1f} s (the first events wait for the {20:g} s the detector learns)")
        steady = latencies[2:]
        if steady:
            print(f"after the learning: median {statistics.median(steady):.1f} s, worst {max(steady):.1f} s")
    print(f"run at {dt.datetime.now().isoformat(timespec='seconds')}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
