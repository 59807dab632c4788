"""Bounded load test of the local gateway: many clients uploading one small clip at once, for a while.

    .venv/bin/python bench/load.py               # 16 clients for 60 s
    .venv/bin/python bench/load.py --seconds 20 --clients 8

It starts ``vimo serve`` on a free loopback port (never anything but 127.0.0.1), makes a small clip
with one motion event, and has ``--clients`` threads POST it to /motion back to back, each on its own
keep-alive connection, until ``--seconds`` have passed or ``--max-requests`` were sent; then it
stops the server. Every answer is checked: 200, a JPEG, and the X-Motion-Events count that a single
request gave. Meanwhile the resident memory of the server's whole process tree (the gateway and
its worker processes) is sampled from /proc. At the end it prints throughput, latency percentiles,
errors, memory at start, peak and end, and whether any ``vimo-*`` work directory was left behind.
Exit status 0 only if there were no errors and nothing was left behind.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from requests_toolbelt import MultipartEncoder

HOST = "127.0.0.1"  # loopback only, by design


def make_clip(path: Path, seconds: float = 4.0, size=(320, 240), fps: int = 25) -> bytes:
    """A small H.264 clip of a textured background; a dark block crosses it in the middle second."""
    import av
    import numpy as np

    rng = np.random.default_rng(11)
    width, height = size
    background = (rng.random((height, width, 3)) * 60 + 100).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frames = int(seconds * fps)
        for i in range(frames):
            picture = background.copy()
            t = i / fps
            if 1.5 <= t < 2.5:
                x = int((t - 1.5) * (width - 60))
                picture[height // 3: height // 3 + 80, x:x + 60] = 20
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def multipart(clip: bytes, name: str) -> tuple[bytes, str]:
    form = MultipartEncoder(fields=[("clip", (name, clip, "video/mp4"))])
    return form.to_string(), form.content_type


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# -- memory of the server's process tree, from /proc -------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(root: int) -> tuple[int, int]:
    """(total resident bytes, process count) of ``root`` and all its descendants."""
    tree, todo, total, count = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            count += 1
        except (OSError, ValueError, IndexError):
            continue
        todo.extend(tree.get(pid, []))
    return total, count


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self):
        started = time.monotonic()
        while not self.stop.is_set():
            rss, procs = tree_rss(self.pid)
            self.samples.append((time.monotonic() - started, rss, procs))
            self.stop.wait(self.interval)


# -- clients -------------------------------------------------------------------------------------------


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.error_times: list[float] = []  # seconds since the load started
        self.sent = 0
        self.started = time.monotonic()

    def take_ticket(self, limit: int) -> bool:
        with self.lock:
            if self.sent >= limit:
                return False
            self.sent += 1
            return True


def client(port: int, body: bytes, content_type: str, expected_events: str, deadline: float, limit: int,
           results: Results, timeout: float) -> None:
    connection = None
    while time.monotonic() < deadline and results.take_ticket(limit):
        started = time.perf_counter()
        fresh = connection is None
        try:
            if connection is None:
                connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
            connection.request("POST", "/motion", body=body,
                               headers={"Content-Type": content_type, "Accept": "image/jpeg"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            problem = None
            if response.status != 200:
                problem = f"HTTP {response.status}: {payload[:120]!r}"
            elif response.getheader("Content-Type") != "image/jpeg" or payload[:3] != b"\xff\xd8\xff":
                problem = f"not a JPEG ({response.getheader('Content-Type')})"
            elif response.getheader("X-Motion-Events") != expected_events:
                problem = f"X-Motion-Events {response.getheader('X-Motion-Events')!r}, expected {expected_events!r}"
            with results.lock:
                if problem:
                    results.errors[problem] += 1
                    results.error_times.append(time.monotonic() - results.started)
                else:
                    results.latencies.append(elapsed)
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            with results.lock:
                results.errors[f"{type(exc).__name__}: {exc} (after {time.perf_counter() - started:.2f} s, "
                               f"{'new' if fresh else 'reused'} connection)"[:160]] += 1
                results.error_times.append(time.monotonic() - results.started)
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# -- the run -------------------------------------------------------------------------------------------


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer on port {port} within {timeout:.0f} s")


def vimo_dirs() -> set[str]:
    """The work directories vimo makes: ``TemporaryDirectory(prefix="vimo-")`` adds 8 random characters."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("vimo-*") if re.fullmatch(r"vimo-[a-z0-9_]{8}", p.name)}


def mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to keep the load on (max 600)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads (max 64)")
    parser.add_argument("--workers", type=int, default=None, help="gateway worker processes (default: one per core)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests in all")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    args = parser.parse_args(argv)
    seconds = min(max(args.seconds, 1.0), 600.0)
    clients = min(max(args.clients, 1), 64)

    work = Path(tempfile.mkdtemp(prefix="load-"))
    leftovers_before = vimo_dirs()
    clip = make_clip(work / "load.mp4")
    body, content_type = multipart(clip, "load.mp4")

    port = free_port()
    command = [sys.executable, "-m", "vimo.cli", "serve", "--host", HOST, "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(port, server)
        idle_rss, idle_procs = tree_rss(server.pid)

        # One request first: it warms a worker and says how many events every answer must report.
        connection = http.client.HTTPConnection(HOST, port, timeout=args.timeout)
        connection.request("POST", "/motion", body=body, headers={"Content-Type": content_type, "Accept": "image/jpeg"})
        first = connection.getresponse()
        first_body = first.read()
        connection.close()
        if first.status != 200 or first_body[:3] != b"\xff\xd8\xff":
            print(f"the first request failed: HTTP {first.status} {first_body[:200]!r}", file=sys.stderr)
            return 1
        expected = first.getheader("X-Motion-Events")

        sampler = Sampler(server.pid)
        sampler.start()
        results = Results()
        started = results.started = time.monotonic()
        deadline = started + seconds
        threads = [threading.Thread(target=client, name=f"client-{i}", daemon=True,
                                    args=(port, body, content_type, expected, deadline, args.max_requests, results,
                                          args.timeout))
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + args.timeout + 10)
        wall = time.monotonic() - started
        hung = sum(thread.is_alive() for thread in threads)
        time.sleep(1.0)  # let the workers settle before the "end" reading
        sampler.stop.set()
        sampler.join(5)
        end_rss, end_procs = tree_rss(server.pid)
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGINT)  # the gateway shuts its worker pool down on Ctrl-C
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)

    left = vimo_dirs() - leftovers_before
    samples = sampler.samples
    peak = max(samples, key=lambda s: s[1]) if samples else (0.0, 0, 0)
    ok, errors = len(results.latencies), sum(results.errors.values())
    lat = results.latencies

    print(f"vimo load test: {clients} clients x {seconds:.0f} s against 127.0.0.1:{port} "
          f"({idle_procs} server process(es) idle, {os.cpu_count()} cores)")
    print(f"clip: {len(clip):,} B, 320x240, 4 s; every answer must be 200 image/jpeg with X-Motion-Events: {expected}")
    print(f"requests: {ok + errors} in {wall:.1f} s = {(ok + errors) / wall:.2f} req/s  (ok {ok}, errors {errors}"
          f"{f', {hung} client(s) hung' if hung else ''})")
    if lat:
        print(f"latency: p50 {percentile(lat, 50) * 1000:.0f} ms, p90 {percentile(lat, 90) * 1000:.0f} ms, "
              f"p99 {percentile(lat, 99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
              f"mean {statistics.fmean(lat) * 1000:.0f} ms")
    for problem, count in results.errors.most_common(5):
        print(f"  error x{count}: {problem}")
    if results.error_times:
        print("  errors at: " + ", ".join(f"{t:.1f} s" for t in results.error_times[:10]))
    print(f"server RSS (process tree): idle {mb(idle_rss)} ({idle_procs} procs), "
          f"start of load {mb(samples[0][1]) if samples else '?'} ({samples[0][2] if samples else '?'} procs), "
          f"peak {mb(peak[1])} at {peak[0]:.0f} s ({peak[2]} procs), end {mb(end_rss)} ({end_procs} procs)")
    if samples:
        step = max(1, len(samples) // 8)
        print("RSS over time: " + ", ".join(f"{t:.0f}s {mb(r)}" for t, r, _ in samples[::step]))
    print(f"vimo-* work directories left in {tempfile.gettempdir()}: {len(left)}"
          + (f" {sorted(left)[:5]}" if left else ""))
    passed = errors == 0 and not left and not hung
    if passed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"server log kept: {log_path}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
