"""Long clips, cut into time segments analysed in parallel, and the events merged back.

An hour of camera footage takes minutes to decode on one core, so a clip longer than
``settings.fanout_threshold`` seconds is cut into segments (``plan_segments``), each analysed on its
own (``analysis.analyze_clip`` with ``start``/``end``), and the events of all segments merged
(``merge``). Where the segments run:

* on this machine (the CLI, ``make run``): a process pool over all cores (``run_local``);
* on AWS Lambda: the function invokes itself once per segment, synchronously (RequestResponse), at
  most ``settings.fanout_concurrency`` at a time (``run_lambda``); each invocation arrives at
  ``app.lambda_handler`` as ``{"vimo_segment": {...}}``, which it hands to ``run_segment`` before
  Powertools sees it. Segment workers never fan out again.

Merging: each pair of neighbouring samples is compared in exactly one segment (a segment starts
from the sample, or keyframe, on or before its start), so a hit is never counted twice; an event
that runs across a boundary comes back as two pieces, the end of one segment's last event and the
start of the next segment's first, and the two are joined when the gap between them is one the
serial run would have bridged (see ``_continues``). Each segment learns the usual motion of its
own first samples, so in scenes with foliage the events can differ slightly from one pass's.
The joined event keeps the stronger piece's peak, score and tile.

Tiles over the wire: a segment worker on Lambda sends the tiles of its strongest ``max_tiles``
events as small base64 JPEGs (a 320-pixel tile is ~20 KB), and no others: any event that makes the
final montage is among the strongest ``max_tiles`` of its own segment. That keeps a segment's answer
far below Lambda's 6 MB response limit, and the parent never decodes a frame again.

Deadlines: every runner takes a ``deadline`` (``time.monotonic()``, which is the same clock in every
process of a machine); a segment cut short reports ``complete=False`` and how far it got, a segment
that never answered is left out, and the merged result says ``complete: false`` with
``analyzed_until`` the end of the stretch from the start of the clip that was analysed completely.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import io
import json
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from .analysis import Result, analyze_clip, analyze_frames
from .config import LAMBDA_PAYLOAD_LIMIT, Options, Settings
from .errors import ApiError
from .events import Event
from .frames import Clip, VideoInfo
from .sources import fetch_url, open_s3_clip, store_source
from .timeline import Timeline
from .upload import Upload

# Local pool: this many segments per worker, so that a segment full of motion (decoded in full)
# does not leave the other cores idle at the end.
SEGMENTS_PER_WORKER = 3
# Lambda: seconds the handler keeps back from its invocation's timeout to merge segments, render
# the montage and answer (its analysis deadline leaves this much), and seconds a segment worker
# keeps before its own timeout.
RESPONSE_RESERVE = 3.0
SEGMENT_MARGIN = 1.5
# Local pool: seconds past the deadline to wait for segments that are stopping at it.
LOCAL_GRACE = 2.0
# A segment's answer stays below this (Lambda refuses responses over 6 MB).
SEGMENT_PAYLOAD_LIMIT = LAMBDA_PAYLOAD_LIMIT - 512 * 1024
SEGMENT_KEY = "vimo_segment"


# -- planning and merging ------------------------------------------------------------------------------


def plan_segments(duration: float, segment_seconds: float, step: float | None = None) -> list[tuple[float, float]]:
    """``[(start, end), ...]``: equal segments of at most ``segment_seconds`` covering the clip.

    Boundaries fall on the sampling grid (multiples of ``step``) when it is given, so that every
    segment samples the same instants the serial run would. The last segment is open-ended
    (``end`` is ``inf``): a clip's duration is only a header's claim, and frames past it still count.
    """
    if not duration > 0 or not math.isfinite(duration) or segment_seconds <= 0:
        return [(0.0, math.inf)]
    count = max(1, math.ceil(duration / segment_seconds - 1e-9))
    bounds = [duration * i / count for i in range(count + 1)]
    if step:
        bounds = [round(b / step) * step for b in bounds]
    bounds[0], bounds[-1] = 0.0, math.inf
    bounds = [b for i, b in enumerate(bounds) if i == 0 or b > bounds[i - 1]]  # grid rounding may collapse one
    return list(zip(bounds, bounds[1:]))


def segment_length(duration: float, slots: int, shortest: float) -> float:
    """Seconds per segment for ``slots`` parallel workers: enough segments to keep every slot
    busy, none shorter than ``shortest`` (below which a segment costs more to start than it saves)."""
    return max(shortest, duration / max(1, slots))


def merge(results: Sequence, cooldown: float, step: float = 0.0) -> list[Event]:
    """The events of consecutive segments as one list, pieces of one event joined across boundaries.

    ``results``: per segment in time order, its ``Result`` (anything with ``.events``) or its list of
    events; ``None`` for a segment that never answered (nothing is joined across it). Only the last
    event before a boundary and the first after it can be pieces of one event: within a segment,
    the event builder has already decided.
    """
    merged: list[Event] = []
    previous_missing = True
    for result in results:
        if result is None:
            previous_missing = True
            continue
        events = sorted(getattr(result, "events", result), key=lambda e: (e.start, e.end))
        if events and merged and not previous_missing and _continues(merged[-1], events[0], cooldown, step):
            merged[-1] = _join(merged[-1], events[0])
            events = events[1:]
        merged.extend(events)
        previous_missing = False
    return merged


def _continues(before: Event, after: Event, cooldown: float, step: float) -> bool:
    """Whether the serial run would have made one event of these two pieces.

    The serial run (``events.EventBuilder``) keeps hits in a row together, and hits with still
    samples between them together when they are at most ``cooldown`` apart. Each piece is timed
    half a step before its first and its last hit, so ``after.start - before.end`` is exactly the
    time between the two hits either side of the boundary: one step when they are in a row. An
    event whose last hit is its peak ends at that peak (see ``events.Event``), half a step later.
    """
    end = before.end - step / 2 if before.end == before.peak else before.end
    return after.start - end <= max(cooldown, step) + 1e-6


def _join(a: Event, b: Event) -> Event:
    strong = a if a.score >= b.score else b
    return Event(start=min(a.start, b.start), end=max(a.end, b.end), peak=strong.peak, score=strong.score,
                 tile=strong.tile)


def combine(results: Sequence, plan: Sequence[tuple[float, float]], options: Options, elapsed_ms: int):
    """The ``Result`` of a whole clip from its segments' results (``None`` for a missing one)."""

    present = [r for r in results if r is not None]
    if not present:
        raise ApiError(504, "deadline", "No part of the clip could be analysed before the deadline.")
    events = merge(results, options.cooldown, options.step)
    first = present[0].video
    video = dataclasses.replace(first, duration=max(r.video.duration for r in present),
                                frames_analyzed=sum(r.video.frames_analyzed for r in present))
    analyzed_until = 0.0
    complete = True
    for (start, end), result in zip(plan, results):
        if result is None:
            complete = False
            break
        if not result.complete:
            complete = False
            analyzed_until = max(analyzed_until, result.analyzed_until or start)
            break
        analyzed_until = end
    timeline = Timeline.merged(r.timeline for r in present) if options.timeline else None
    return Result(events, video, elapsed_ms, complete, None if complete else analyzed_until, timeline)


# -- deciding ------------------------------------------------------------------------------------------


def analyze(clip: str | Path, options: Options, settings: Settings, deadline: float | None = None,
            s3_key: str | Callable[[], str] | None = None, context=None):
    """A clip's ``Result``: in one pass, or in segments when it is long enough to be worth it.

    ``clip`` is what FFmpeg opens (a local path or a presigned S3 URL), once whichever way it goes.
    On Lambda (``settings.fanout == "lambda"``) segments need an ``s3_key`` every worker can read
    (or a function that stores the clip and returns one, called only when the clip is long enough)
    and the invocation's ``context`` (for the function's ARN); without them the clip is analysed in
    one pass.
    """

    on_lambda = settings.fanout == "lambda" and s3_key is not None and context is not None
    on_pool = settings.fanout == "local" and local_workers(settings) > 1
    if not (on_lambda or on_pool):  # one pass whatever the length
        return analyze_clip(clip, options, settings, deadline=deadline)
    opened = Clip(str(clip), settings)
    duration = opened.duration_hint()
    if duration < settings.fanout_threshold:
        return analyze_clip(opened, options, settings, deadline=deadline)
    opened.close()
    if on_lambda:
        key = s3_key() if callable(s3_key) else s3_key
        return run_lambda({"s3_key": key}, options, settings, duration, context, deadline=deadline)
    return run_local(str(clip), options, settings, duration, deadline=deadline)


def analyze_upload(upload: Upload, workdir: Path, settings: Settings, deadline: float | None = None, context=None):
    """Any request's media analysed: a clip sent by reference, a clip in the body (written to
    ``workdir``, never under the client's name), or a burst of frames."""

    if upload.source is not None:
        return analyze_source(upload.source, workdir, upload.options, settings, deadline, context)
    if upload.clip is not None:
        path = Path(workdir) / "clip"
        path.write_bytes(upload.clip.data)
        return analyze(path, upload.options, settings, deadline, context=context)
    return analyze_frames(upload, settings)


def analyze_source(source: dict, workdir: Path, options: Options, settings: Settings, deadline: float | None = None,
                   context=None):
    """A clip sent by reference, ``{"s3_key": ...}`` or ``{"movie_url": ...}``, analysed (the handler's
    entry point for JSON requests).

    An upload is opened by FFmpeg over HTTP through a presigned URL; a movie_url is downloaded to
    ``workdir`` by the SSRF-safe fetcher first (see ``sources``). On Lambda, a long fetched clip is
    copied to S3 so that the segment workers can read it.
    """

    if "s3_key" in source:
        key = source["s3_key"]
        return analyze(open_s3_clip(key, settings), options, settings, deadline, s3_key=key, context=context)
    path = Path(workdir) / "clip"  # never the URL's file name
    fetch_url(source["movie_url"], path, settings, deadline)
    store = (lambda: store_source(path, settings)) if settings.results_bucket else None
    return analyze(path, options, settings, deadline, s3_key=store, context=context)


def lambda_deadline(context) -> float:
    """When an invocation's analysis must stop (``time.monotonic()`` seconds) so that what it found
    is still merged, rendered and returned before Lambda's timeout kills it."""
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESPONSE_RESERVE


def local_workers(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


# -- local: a process pool -----------------------------------------------------------------------------


def run_local(clip: str, options: Options, settings: Settings, duration: float, deadline: float | None = None,
              workers: int | None = None):
    """Analyse the clip's segments on a pool of ``workers`` processes (default: one per core)."""
    started = time.perf_counter()
    workers = workers or local_workers(settings)
    plan = plan_segments(duration, segment_length(duration, workers * SEGMENTS_PER_WORKER, settings.segment_seconds),
                         options.step)
    # spawn, not fork: the parent has opened the clip (FFmpeg's threads) and may run in a threaded
    # server; a forked copy of those is not safe.
    pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(plan)), mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_analyze_segment, clip, options, settings, start, end, deadline)
                   for start, end in plan]
        results = _collect(futures, deadline, grace=LOCAL_GRACE)
    finally:
        # Segments still running past the deadline stop at it by themselves; do not wait for them.
        pool.shutdown(wait=False, cancel_futures=True)
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


def _analyze_segment(clip, options, settings, start, end, deadline):

    # One decoder thread per process: the pool is the parallelism, and threads on top of it only
    # contend for the same cores.
    return analyze_clip(clip, options, settings, start=start, end=end, deadline=deadline, threads=1)


def _collect(futures: list, deadline: float | None, grace: float = 0.0) -> list:
    """Each future's result, in order; ``None`` for those not done by ``deadline`` (+ ``grace``).
    An ``ApiError`` from any segment (the clip is not a video, ...) is the whole request's answer."""
    timeout = None if deadline is None else max(0.0, deadline + grace - time.monotonic())
    done, _ = concurrent.futures.wait(futures, timeout=timeout)
    results = []
    for future in futures:
        if future not in done:
            future.cancel()
            results.append(None)
        else:
            results.append(future.result())
    return results


# -- AWS Lambda: the function invokes itself -----------------------------------------------------------


def run_lambda(source: dict, options: Options, settings: Settings, duration: float, context,
               deadline: float | None = None, client=None):
    """Analyse the clip's segments in parallel invocations of this same function.

    Each segment is one synchronous ``Invoke`` of ``context.invoked_function_arn`` (the very version
    or alias that is running, so parent and workers never disagree on the code), at most
    ``settings.fanout_concurrency`` in flight. Workers are told how long they may take, and finish
    with what they have before the parent must answer.
    """
    started = time.perf_counter()
    deadline = lambda_deadline(context) if deadline is None else deadline
    budget = deadline - time.monotonic()
    slots = max(1, settings.fanout_concurrency)
    plan = plan_segments(duration, segment_length(duration, slots, settings.segment_seconds), options.step)
    client = client or lambda_client(read_timeout=max(1.0, budget) + 5)
    function = context.invoked_function_arn
    options_payload = options_to_dict(options)

    from botocore.exceptions import BotoCoreError, ClientError  # only Lambda fan-outs need botocore

    def invoke(start: float, end: float) -> object:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        payload = {SEGMENT_KEY: {"source": source, "start": start, "end": None if math.isinf(end) else end,
                                 "options": options_payload, "budget_ms": remaining_ms}}
        try:
            response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                                     Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:  # throttled, timed out, not allowed
            raise ApiError(502, "segment_failed", f"Analysing the clip from {start:.0f} s failed: {exc}") from None
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise ApiError(502, "segment_failed", f"Analysing the clip from {start:.0f} s failed: "
                                                  f"{body[:300].decode('utf-8', 'replace')}")
        return result_from_dict(json.loads(body))

    pool = concurrent.futures.ThreadPoolExecutor(min(slots, len(plan)), thread_name_prefix="segment")
    try:
        futures = [pool.submit(invoke, start, end) for start, end in plan]
        # A worker answers within its budget; a little grace covers the network around it.
        results = _collect(futures, deadline, grace=RESPONSE_RESERVE / 2)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait on a worker that is past its time
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


def lambda_client(read_timeout: float = 900.0):
    """A Lambda client whose read timeout outlasts a segment (botocore's default, 60 s, may not)."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=read_timeout, connect_timeout=5, tcp_keepalive=True,
                    retries={"mode": "standard", "total_max_attempts": 3},
                    max_pool_connections=64)
    return boto3.session.Session().client("lambda", config=config)


def run_segment(event: dict, context) -> dict:
    """The worker's side: analyse one segment and answer with JSON; a failure is an error object,
    so that the parent can tell a refusal from a crash without parsing Lambda's error format."""

    try:
        spec = event[SEGMENT_KEY]
        settings = Settings.from_env()
        options = options_from_dict(spec["options"])
        start = float(spec["start"])
        end = math.inf if spec.get("end") is None else float(spec["end"])
        seconds = context.get_remaining_time_in_millis() / 1000 - SEGMENT_MARGIN
        if spec.get("budget_ms") is not None:
            seconds = min(seconds, spec["budget_ms"] / 1000 - SEGMENT_MARGIN)
        deadline = time.monotonic() + max(0.0, seconds)
        clip = open_s3_clip(spec["source"]["s3_key"], settings)
        result = analyze_clip(clip, options, settings, start=start, end=end, deadline=deadline)
        return result_to_dict(result, options.max_tiles)
    except ApiError as error:
        return {"error": {"status": error.status, "code": error.code, "message": error.message}}
    except Exception as exc:  # a bug: logged by Lambda, answered as the parent's 502
        return {"error": {"status": 502, "code": "segment_failed", "message": f"{type(exc).__name__}: {exc}"}}


# -- wire format ---------------------------------------------------------------------------------------


def options_to_dict(options: Options) -> dict:
    return dataclasses.asdict(options)  # timestamps stay a tuple: JSON writes it as a list


def options_from_dict(values: dict) -> Options:
    known = {f.name for f in dataclasses.fields(Options)}
    values = {k: v for k, v in values.items() if k in known}
    if values.get("timestamps") is not None:
        values["timestamps"] = tuple(values["timestamps"])
    return Options(**values)


def result_to_dict(result, max_tiles: int) -> dict:
    """A segment's result as JSON: events with ``tile`` (base64 JPEG) for the strongest ``max_tiles``."""
    strongest = sorted(range(len(result.events)), key=lambda i: -result.events[i].score)[:max_tiles]
    tiles = {i: _jpeg_base64(result.events[i].tile) for i in strongest if result.events[i].tile is not None}
    events = [{"start": e.start, "end": e.end, "peak": e.peak, "score": e.score, "tile": tiles.get(i)}
              for i, e in enumerate(result.events)]
    payload = {"events": events, "video": dataclasses.asdict(result.video), "elapsed_ms": result.elapsed_ms,
               "complete": result.complete, "analyzed_until": result.analyzed_until,
               "timeline": None if result.timeline is None else result.timeline.to_dict()}
    # Far below the limit in practice; if an absurd number of tiles ever were not, drop the weakest.
    while len(json.dumps(payload)) > SEGMENT_PAYLOAD_LIMIT and strongest:
        events[strongest.pop()]["tile"] = None
    return payload


def result_from_dict(payload: dict):

    if "error" in payload:
        error = payload["error"]
        raise ApiError(int(error.get("status", 502)), error.get("code", "segment_failed"), error.get("message", ""))
    events = [Event(start=e["start"], end=e["end"], peak=e["peak"], score=e["score"],
                    tile=_image(e.get("tile"))) for e in payload["events"]]
    return Result(events, VideoInfo(**payload["video"]), int(payload["elapsed_ms"]), bool(payload["complete"]),
                  payload.get("analyzed_until"), Timeline.from_dict(payload.get("timeline")))


def _jpeg_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=88)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(data: str | None) -> Image.Image | None:
    if not data:
        return None
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image
