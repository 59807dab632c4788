"""`vimo watch SOURCE`: a live camera followed in real time, each motion event reported as it ends.

The stages are the analysis's own, fed as the stream arrives: ``LiveSource`` turns an ``rtsp://``
stream, an HLS playlist (``http(s)://.../live.m3u8``) or a file still being written into samples one
``step`` apart, ``motion.detect`` scores them (a generator, so it streams), and ``events.EventBuilder``
closes each event once ``cooldown`` seconds have passed without motion; it is then printed, POSTed
to the webhook and kept for the period's contact sheet. Nothing grows with time: the detector keeps
a window of samples, the builder only its open event, and a sheet at most ``max_tiles`` tiles (the
events of a period are dropped when its sheet is written).

Latency: ``motion.detect`` holds back the first ``HISTORY`` samples (20 s at the default step) to
learn the scene's usual motion before scoring any, and each verdict waits for the three samples
after it (objects must make a track); an event is reported ``cooldown`` after its motion ends, plus
those three samples, plus what the source itself lags (an HLS segment). Times are never late:
``start``/``end``/``peak`` are seconds from the first frame seen, by the stream's own timestamps, and
``start_at``/``end_at``/``peak_at`` are those instants on this machine's clock (the stream's
timestamps anchored on the frame of its first timeline that arrived with the least delay, until a
line uses the anchor). One anchor for the whole watch: every line's ``*_at`` minus its seconds is
the same.

A stream that stops sending for ``--read-timeout`` seconds, or fails, is reopened with growing pauses
(1 s doubling to a minute); frames a reconnect replays (an HLS playlist restarts three segments
back) are recognised by their packets and skipped. An ``rtsp://`` (or other live protocol) stream
has no end; an HTTP stream or HLS playlist that ends (``#EXT-X-ENDLIST``), or a file that stops
growing for ``--read-timeout`` seconds, ends the watch. Ctrl-C (or SIGTERM) ends it too; either
way the open event is reported first.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import queue
import re
import signal
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import av
from av.video.reformatter import VideoReformatter

from .config import Options, Settings
from .events import Event, EventBuilder, hhmmss
from .frames import Sample, VideoInfo, analysis_size, colourfulness
from .motion import detect

# Pauses between reconnection attempts: doubling from the first to the last, and back to the first
# once frames flow again.
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
# Seconds to open a source (RTSP handshake, first playlist and segment).
OPEN_TIMEOUT = 15.0
# Schemes that are live by nature: their end is a drop, not the end of the recording.
ALWAYS_LIVE = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp")
# Packets remembered to recognise what a reconnect replays (an HLS playlist's last segments).
REMEMBERED_PACKETS = 4096
# Samples decoded ahead of the detector: a few frames of memory, and a bound on it.
QUEUE_SAMPLES = 16
# A timestamp this far from the previous one is a new timeline (a publisher that restarted, an HLS
# discontinuity), not a gap: the stream's time goes on from where it was.
TIMELINE_JUMP = 60.0
# Webhook: attempts and the pause before the n-th retry (backoff_factor * 2**(n-1) s, at most 30 s),
# seconds per request, events waiting to be sent, seconds to wait for them at exit.
WEBHOOK_RETRIES = 5
WEBHOOK_BACKOFF = 0.5
WEBHOOK_TIMEOUT = 10.0
WEBHOOK_QUEUE = 1000
WEBHOOK_DRAIN = 30.0
# Seconds after a period ends before its sheet is written: the detector reports an event a few
# seconds after it ends (more while it learns the scene, up to HISTORY samples).
SHEET_GRACE = 30.0


def watch(args, options: Options, settings: Settings) -> int:
    """Run ``vimo watch`` until the stream ends or a signal comes; the exit status."""
    stop = threading.Event()
    note = (lambda text: None) if args.quiet else (lambda text: print(f"vimo watch: {text}", file=sys.stderr,
                                                                          flush=True))
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    source = LiveSource(args.source, options.step, args.read_timeout, stop, note)
    sheet = RollingSheet(args.sheet_every, args.output_dir, source, options, note) if args.sheet_every else None
    hook = Webhook(args.webhook, os.environ.get("VIMO_WEBHOOK_SECRET") or None, note) if args.webhook else None

    def report(event: Event) -> None:
        line = event_json(event, source.wall_clock)
        if args.json:
            print(json.dumps(line), flush=True)
        else:
            print(readable(line), flush=True)
        if hook is not None:
            hook.send(line)
        if sheet is not None:
            sheet.add(event)

    builder = EventBuilder(options.cooldown, options.tile_width)
    try:
        for motion in detect(source.samples(), options.sensitivity, picture_width=options.tile_width,
                             regions=options.regions, exclude=options.exclude):
            builder.feed(motion)
            for event in _closed(builder):
                report(event)
            if sheet is not None:
                sheet.roll()
        for event in builder.close():  # the stream ended or we were told to stop: the open event too
            report(event)
        builder.events.clear()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        source.close()
        if sheet is not None:
            sheet.write()
        if hook is not None:
            hook.close()
    return 1 if source.failed else 0


def _closed(builder: EventBuilder) -> list[Event]:
    """The events the builder has closed since last asked; it keeps none (memory stays flat)."""
    events, builder.events = builder.events, []
    return events


def event_json(event: Event, wall_clock: Callable[[float], dt.datetime]) -> dict:
    """The API's event (seconds from the first frame seen) with the same instants on the clock."""
    return event.to_dict(origin=wall_clock(0.0))


def readable(line: dict) -> str:
    start = dt.datetime.fromisoformat(line["start_at"])
    end = dt.datetime.fromisoformat(line["end_at"])
    return (f"{start:%Y-%m-%d %H:%M:%S}  motion for {line['end'] - line['start']:.1f} s, until {end:%H:%M:%S} "
            f"(stream {hhmmss(line['start'])}-{hhmmss(line['end'])}), {line['score'] * 100:.1f} % of the picture "
            f"at its peak")


# -- the source ----------------------------------------------------------------------------------------


class Dropped(Exception):
    """The stream stopped sending or failed; it is reopened."""


class LiveSource:
    """A live source as samples ``step`` apart, across reconnections, in real time.

    A thread reads and decodes (so that Ctrl-C is seen at once, even while a read waits) and hands
    samples over through a small queue. Times are seconds from the first frame seen: within one
    connection by the stream's timestamps, across a reconnection by this machine's clock.
    """

    def __init__(self, url: str, step: float, read_timeout: float, stop: threading.Event,
                 note: Callable[[str], None]):
        self.url, self.step, self.read_timeout = url, step, read_timeout
        self.stop, self.note = stop, note
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        self.is_file = scheme in ("", "file")
        self.always_live = scheme in ALWAYS_LIVE
        self.failed = False  # the source could not be used at all (not a video)
        self.info: VideoInfo | None = None  # size and codec, once known
        self.frames = 0
        self.skipped = 0
        self._told_skipped = -math.inf
        self._queue: queue.Queue = queue.Queue(QUEUE_SAMPLES)
        self._thread: threading.Thread | None = None
        # time.time() - t of the least delayed frame: t -> wall clock. Learnt until a new timeline
        # starts: only the first timeline's times are the stream's own; a later one is placed by the
        # arrival of its first frame, late by the backlog a reconnection replays. The first line to
        # use it fixes the ``_anchor`` every line uses (the reader thread may still lower the epoch).
        self._epoch: float | None = None
        self._learning_epoch = True
        self._anchor: float | None = None
        self._first_arrival: float | None = None  # time.monotonic() at the first frame
        self._last_t = -math.inf
        # (stream seconds, session seconds) the timeline counts from, and the last frame's stream
        # seconds: a reconnection that goes on where the stream was keeps its timeline
        self._origin: tuple[float, float] = (0.0, 0.0)
        self._previous: float | None = None
        self._packets: collections.deque = collections.deque(maxlen=REMEMBERED_PACKETS)
        self._seen: set = set()
        self._gray, self._pictures = VideoReformatter(), VideoReformatter()

    def wall_clock(self, t: float) -> dt.datetime:
        """When the instant ``t`` (seconds from the first frame) was, on this machine's clock."""
        if self._anchor is None:
            self._anchor = self._epoch
        return dt.datetime.fromtimestamp((time.time() if self._anchor is None else self._anchor) + t).astimezone()

    def samples(self) -> Iterator[Sample]:
        """The samples, until the stream ends or ``stop`` is set."""
        self._thread = threading.Thread(target=self._run, name="vimo-watch-reader", daemon=True)
        self._thread.start()
        while True:
            try:
                sample = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.stop.is_set() or not self._thread.is_alive() and self._queue.empty():
                    return
                continue
            if sample is None:
                return
            yield sample

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(2.0)  # a read waiting for data ends at read_timeout; do not wait for it

    # -- the reader thread --

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        connection = 0
        undecodable = None  # since when the source has answered with something that is not a video
        try:
            while not self.stop.is_set():
                frames_before = self.frames
                try:
                    ended = self._follow(connection)
                    if ended:
                        self.note("stopped" if self.stop.is_set() else "the stream ended")
                        return
                    raise Dropped("the stream stopped sending")
                except (Dropped, av.FFmpegError, OSError) as error:  # a file not yet created waits too
                    if self.stop.is_set():
                        return
                    if self.frames == 0 and (isinstance(error, av.InvalidDataError) or self.is_file
                                             and not isinstance(error, FileNotFoundError)):
                        # what is there is not a video (an HTML page, a text file): give it read_timeout
                        # to become one (a file whose header is being written), then give up
                        undecodable = undecodable or time.monotonic()
                        if time.monotonic() - undecodable > self.read_timeout:
                            return self._fail(f"{self.url} is not a video that can be decoded")
                    if self.frames > frames_before:
                        backoff = BACKOFF_FIRST
                    if self.is_file and self.frames > 0:
                        self.note("the file stopped growing")
                        return
                    self.note(f"{_reason(error)}; {'reconnecting' if self.frames else 'trying again'} in {backoff:g} s")
                    if self.stop.wait(backoff):
                        return
                    backoff = min(BACKOFF_MAX, backoff * 2)
                    connection += 1
                except _NotAVideo as error:
                    return self._fail(str(error))
        finally:
            self._put(None)

    def _fail(self, message: str) -> None:
        print(f"vimo watch: error: {message}", file=sys.stderr, flush=True)  # even with --quiet
        self.failed = True

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if item is None:  # stopping: make sure the consumer wakes up
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass

    def _open(self):
        options = {}
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks; cameras all speak TCP
        if self.is_file:
            # keep reading at the end of a file being written, until it stops growing
            options.update(follow="1", rw_timeout=str(int(self.read_timeout * 1_000_000)))
        container = av.open(self.url, options=options, timeout=(OPEN_TIMEOUT, self.read_timeout))
        if not container.streams.video:
            container.close()
            raise _NotAVideo(f"{self.url} has no video stream")
        return container

    def _follow(self, connection: int) -> bool:
        """Read one connection until it ends (True: the end of the stream) or stops sending (False)."""
        with self._open() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.skip_frame = "NONREF"  # nothing depends on those: never sampled anyway
            self.note("reconnected" if self.frames else f"watching {self.url}")
            next_time = self._last_t + self.step if math.isfinite(self._last_t) else 0.0
            replayed = -math.inf  # frames up to this timestamp were seen before the reconnection
            for packet in container.demux(stream):
                if self.stop.is_set():
                    return True
                if packet.size == 0:
                    continue
                key = (packet.pts, packet.size, zlib.crc32(bytes(packet)))
                if key in self._seen:
                    if connection and packet.pts is not None:
                        replayed = max(replayed, float(packet.pts * stream.time_base))
                else:
                    self._remember(key)
                for frame in _decode(stream, packet):
                    if frame.pts is None or frame.time <= replayed:
                        continue
                    seconds = float(frame.time)
                    previous, self._previous = self._previous, seconds
                    if previous is None or not -0.5 < seconds - previous <= TIMELINE_JUMP:
                        if self._epoch is not None:
                            self._learning_epoch = False  # a later timeline: placed by arrival, not its own times
                        self._origin = (seconds, self._start_of_timeline())
                    t = self._origin[1] + seconds - self._origin[0]
                    if t + 1e-6 < next_time:
                        continue
                    self._deliver(frame, t)
                    next_time = (math.floor(t / self.step + 1e-6) + 1) * self.step
            if container.format.name == "hls":  # FFmpeg ends a playlist it can no longer reload, too
                return self.stop.is_set() or _playlist_ended(self.url)
        return not self.always_live

    def _start_of_timeline(self) -> float:
        """Session time of a connection's (or timeline's) first frame: the time since the first frame
        arrived, and never before the last sample."""
        now = time.monotonic()
        if self._first_arrival is None:
            self._first_arrival = now
            return 0.0
        return max(now - self._first_arrival, self._last_t + self.step)

    def _deliver(self, frame, t: float) -> None:
        w, h = analysis_size(frame.width, frame.height)
        gray = self._gray.reformat(frame, width=w, height=h, format="gray", interpolation="AREA").to_ndarray()
        now = time.time()
        if self._learning_epoch:
            self._epoch = now - t if self._epoch is None else min(self._epoch, now - t)
        self._last_t = t
        self.frames += 1
        if self.info is None or (self.info.width, self.info.height) != (frame.width, frame.height):
            codec = frame.format.name
            self.info = VideoInfo(duration=0.0, fps=None, width=frame.width, height=frame.height, codec=codec)
        sample = Sample(t, gray, frame, frame.rotation % 360, self._pictures, colourfulness(frame))
        if self.is_file:  # a file waits for the detector: nothing is lost by reading it later
            self._put(sample)
            return
        try:  # a live stream does not wait: if the detector falls behind, samples are skipped
            self._queue.put_nowait(sample)
        except queue.Full:
            self.skipped += 1
            if time.monotonic() - self._told_skipped > 60:
                self._told_skipped = time.monotonic()
                self.note(f"the analysis is slower than the stream: {self.skipped} samples skipped so far "
                          "(a larger --step helps)")

    def _remember(self, key) -> None:
        if len(self._packets) == self._packets.maxlen:
            self._seen.discard(self._packets[0])
        self._packets.append(key)
        self._seen.add(key)


class _NotAVideo(Exception):
    pass


def _decode(stream, packet):
    try:
        return stream.codec_context.decode(packet)
    except av.FFmpegError:
        return []  # a damaged packet: the next keyframe recovers


def _playlist_ended(url: str) -> bool:
    """Whether an HLS playlist says it is complete (``#EXT-X-ENDLIST``; for a master playlist, its
    first variant's): only then is its end the end of the stream."""
    import requests

    try:
        for _ in range(2):
            text = requests.get(url, timeout=OPEN_TIMEOUT).text
            if "#EXT-X-STREAM-INF" not in text:
                return "#EXT-X-ENDLIST" in text
            lines = text.splitlines()
            variant = next(line.strip() for line in lines[[i for i, line in enumerate(lines)
                                                           if line.startswith("#EXT-X-STREAM-INF")][0] + 1:]
                           if line.strip() and not line.startswith("#"))
            url = urljoin(url, variant)
    except (requests.RequestException, StopIteration):
        pass
    return False


def _reason(error: BaseException) -> str:
    if isinstance(error, av.ExitError):
        return "no data for a while"
    if isinstance(error, av.FFmpegError):
        return f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
    return str(error) or type(error).__name__


# -- the rolling contact sheet -------------------------------------------------------------------------


class RollingSheet:
    """The events of each period (``--sheet-every``, on the clock: 1h sheets cover whole hours) as a
    contact sheet in ``output_dir``, tiles stamped with the time of day. An event belongs to the
    period of its peak; a period's sheet is written SHEET_GRACE seconds after it ends (events are
    reported a little after they happen), or at exit. Only the ``max_tiles`` strongest events of a
    period keep their tile; a period without events gets no sheet."""

    def __init__(self, period: float, output_dir: Path, source: LiveSource, options: Options,
                 note: Callable[[str], None]):
        self.period, self.output_dir, self.source, self.options, self.note = period, output_dir, source, options, note
        self.name = _source_name(source.url)
        self.periods: dict[int, list[Event]] = {}  # the open periods' events: one or two
        self._written = -math.inf  # periods up to this one have been written
        output_dir.mkdir(parents=True, exist_ok=True)

    def add(self, event: Event) -> None:
        wall = self.source.wall_clock(event.peak)
        index = max(math.floor(wall.timestamp() / self.period), self._written + 1)
        midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
        events = self.periods.setdefault(index, [])
        events.append(dataclasses.replace(event, peak=(wall - midnight).total_seconds()))
        for weaker in sorted(events, key=lambda e: -e.score)[self.options.max_tiles:]:
            weaker.tile = None

    def roll(self) -> None:
        """Write the sheets of the periods that ended more than SHEET_GRACE seconds ago."""
        now = time.time()
        for index in sorted(self.periods):
            if (index + 1) * self.period + SHEET_GRACE < now:
                self._write(index)

    def write(self) -> None:
        """Write every open period's sheet (at exit)."""
        for index in sorted(self.periods):
            self._write(index)

    def _write(self, index: int) -> None:
        from .montage import contact_sheet

        events = self.periods.pop(index)
        self._written = max(self._written, index)
        start = dt.datetime.fromtimestamp(index * self.period).astimezone()
        end = dt.datetime.fromtimestamp((index + 1) * self.period).astimezone()
        info = self.source.info or VideoInfo(0.0, None, 0, 0, "")
        info = dataclasses.replace(info, duration=self.period)
        path = self.output_dir / f"{self.name}-{start:%Y%m%d-%H%M%S}.jpg"
        path.write_bytes(contact_sheet(events, info, f"{self.name}  {start:%Y-%m-%d %H:%M:%S} - {end:%H:%M:%S}",
                                       self.options))
        self.note(f"sheet {path} ({len(events)} event{'s' * (len(events) != 1)})")


def _source_name(url: str) -> str:
    """A file-name-safe name for the sheets: the source's file name, else its host."""
    if "://" in url:
        parts = urlsplit(url)
        name = Path(parts.path).stem or parts.hostname or ""
    else:
        name = Path(url).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "camera"


# -- the webhook ---------------------------------------------------------------------------------------


class Webhook:
    """POSTs each event's JSON to a URL from a thread of its own (a slow receiver never holds up the
    watching), retrying failed deliveries with backoff (urllib3's Retry); with a secret, the body is
    signed: ``X-Vimo-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>``."""

    def __init__(self, url: str, secret: str | None, note: Callable[[str], None]):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.url, self.secret, self.note = url, secret, note
        self.session = requests.Session()
        retry = Retry(total=WEBHOOK_RETRIES, backoff_factor=WEBHOOK_BACKOFF, backoff_max=30,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"POST"}),
                      raise_on_status=False, respect_retry_after_header=True)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._queue: queue.Queue = queue.Queue(WEBHOOK_QUEUE)
        self._thread = threading.Thread(target=self._run, name="vimo-watch-webhook", daemon=True)
        self._thread.start()

    def send(self, line: dict) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.note(f"webhook: {WEBHOOK_QUEUE} events waiting to be sent; this one is dropped")

    def headers(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json", "User-Agent": "vimo-watch"}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Vimo-Signature"] = f"sha256={digest}"
        return headers

    def _run(self) -> None:
        import requests

        for line in iter(self._queue.get, None):
            body = json.dumps(line).encode()
            try:
                response = self.session.post(self.url, data=body, headers=self.headers(body), timeout=WEBHOOK_TIMEOUT)
                if response.status_code >= 300:
                    self.note(f"webhook: {self.url} answered {response.status_code}; event at {line['start_at']} "
                              "not delivered")
            except requests.RequestException as error:
                self.note(f"webhook: {self.url} failed ({type(error).__name__}); event at {line['start_at']} "
                          "not delivered")

    def close(self) -> None:
        """Send what is waiting (for at most WEBHOOK_DRAIN seconds), then stop."""
        try:
            self._queue.put(None, timeout=WEBHOOK_DRAIN)
        except queue.Full:
            pass
        self._thread.join(WEBHOOK_DRAIN)
        self.session.close()
