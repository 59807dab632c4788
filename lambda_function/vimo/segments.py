"""Long clips: cut into time segments (``plan_segments``), and the segments' results merged back
(``merge``, ``combine``), with the wire format a segment's result travels in between processes.

An hour of camera footage takes minutes to decode on one core, so a clip longer than
``settings.fanout_threshold`` seconds is cut into segments, each analysed on its own
(``analysis.analyze_clip`` with ``start``/``end``). Where they run (a process pool, Lambda invoking
itself, a Dask cluster, Step Functions) is ``runners``' decision, not this module's.

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

A segment cut short by its deadline reports ``complete=False`` and how far it got, a segment that
never answered is ``None``, and the combined result says ``complete: false`` with ``analyzed_until``
the end of the stretch from the start of the clip that was analysed completely.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
from typing import Sequence

from PIL import Image

from .analysis import Result
from .config import LAMBDA_PAYLOAD_LIMIT, Options
from .errors import ApiError
from .events import Event
from .frames import VideoInfo
from .timeline import Timeline

# A segment's answer stays below this (Lambda refuses responses over 6 MB).
SEGMENT_PAYLOAD_LIMIT = LAMBDA_PAYLOAD_LIMIT - 512 * 1024


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
                 tile=strong.tile, box=strong.box)


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
    return Result(events, video, elapsed_ms, complete, None if complete else analyzed_until, timeline=timeline)



# -- wire format ---------------------------------------------------------------------------------------


def options_to_dict(options: Options) -> dict:
    return dataclasses.asdict(options)  # timestamps stay a tuple: JSON writes it as a list


def options_from_dict(values: dict) -> Options:
    known = {f.name for f in dataclasses.fields(Options)}
    values = {k: v for k, v in values.items() if k in known}
    if values.get("timestamps") is not None:
        values["timestamps"] = tuple(values["timestamps"])
    for name in ("regions", "exclude"):  # JSON brings lists; Options holds tuples
        if values.get(name) is not None:
            values[name] = tuple(tuple(tuple(point) for point in polygon) for polygon in values[name])
    return Options(**values)


def result_to_dict(result, max_tiles: int) -> dict:
    """A segment's result as JSON: events with ``tile`` (base64 JPEG) for the strongest ``max_tiles``."""
    strongest = sorted(range(len(result.events)), key=lambda i: -result.events[i].score)[:max_tiles]
    tiles = {i: _jpeg_base64(result.events[i].tile) for i in strongest if result.events[i].tile is not None}
    events = [{"start": e.start, "end": e.end, "peak": e.peak, "score": e.score, "tile": tiles.get(i), "box": e.box}
              for i, e in enumerate(result.events)]
    payload = {"events": events, "video": dataclasses.asdict(result.video), "elapsed_ms": result.elapsed_ms,
               "complete": result.complete, "analyzed_until": result.analyzed_until,
               "timeline": None if result.timeline is None else result.timeline.to_dict()}
    # Far below the limit in practice; if an absurd number of tiles ever were not, drop the weakest.
    while len(json.dumps(payload)) > SEGMENT_PAYLOAD_LIMIT and strongest:
        events[strongest.pop()]["tile"] = None
    return payload


def error_to_dict(error: ApiError) -> dict:
    """A segment's refusal on the wire, which ``result_from_dict`` raises again."""
    return {"error": {"status": error.status, "code": error.code, "message": error.message}}


def result_from_dict(payload: dict):

    if "error" in payload:
        error = payload["error"]
        raise ApiError(int(error.get("status", 502)), error.get("code", "segment_failed"), error.get("message", ""))
    events = [Event(start=e["start"], end=e["end"], peak=e["peak"], score=e["score"],
                    tile=_image(e.get("tile")), box=tuple(e["box"]) if e.get("box") else None)
              for e in payload["events"]]
    return Result(events, VideoInfo(**payload["video"]), int(payload["elapsed_ms"]), bool(payload["complete"]),
                  payload.get("analyzed_until"), timeline=Timeline.from_dict(payload.get("timeline")))


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
