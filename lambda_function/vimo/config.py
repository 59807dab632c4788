"""Every tunable of vimo, with its default and why, in one place.

Two kinds of configuration live here:

* ``Options``: what a caller may set per request, as form fields or query parameters (the CLI takes
  the same names as flags). Unknown names and out-of-range values are refused, never ignored, so a
  typo such as ``sensitivty=0.9`` cannot silently give a different montage.
* ``Settings``: what the deployment sets through environment variables (the SAM template sets them
  on AWS; the local gateway and the CLI read the same variables).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import bad_request

# Lambda refuses an invoke payload over 6 MB (6,291,456 bytes). API Gateway base64-encodes binary
# bodies, so about 4.4 MB of raw upload fits; a JPEG answer has the same ceiling.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024

# regions / exclude: enough for any real mask (Frigate's zones rarely have more than a dozen
# points), few enough that rasterising them costs nothing and a request cannot make it cost more.
MAX_POLYGONS = 20
MAX_POINTS = 100


@dataclass(frozen=True)
class Spec:
    """How one option is parsed and checked (its default is ``Options``')."""

    kind: type | tuple
    low: float | None = None
    high: float | None = None
    doc: str = ""


OPTION_SPECS: dict[str, Spec] = {
    "format": Spec(("jpeg", "json"),
                   doc="`jpeg` returns the contact sheet, `json` the events. `Accept: application/json` also selects JSON."),
    "step": Spec(float, 0.04, 10.0,
                 doc="Seconds between the frames that are compared. The original design stepped in half-seconds: "
                     "fine enough that a person crossing the view is seen several times."),
    "cooldown": Spec(float, 0.0, 60.0,
                     doc="Motion that resumes within this many seconds continues the same event instead of starting "
                         "a new tile (the original skipped 2 s after each hit)."),
    "sensitivity": Spec(float, 0.0, 1.0,
                        doc="0 reports only large, obvious motion; 1 reports the smallest changes the noise allows "
                            "and things that move fastest for their size."),
    "columns": Spec(int, 1, 12, doc="Tiles per row of the contact sheet."),
    "tile_width": Spec(int, 80, 1280, doc="Width of each tile in pixels."),
    "max_tiles": Spec(int, 1, 200,
                      doc="At most this many tiles; when there are more events, the strongest are kept (all events "
                          "are still listed in JSON)."),
    "interval": Spec(float, 0.001, 3600.0, doc="Frame bursts: seconds between consecutive frames."),
    "timestamps": Spec(list,
                       doc="Frame bursts: comma-separated time in seconds of each frame, instead of `interval`."),
    "delivery": Spec(("inline", "s3"),
                     doc="`inline` returns the JPEG in the response; `s3` stores it in the results bucket and returns "
                         "a presigned URL. Default: the deployment's DEFAULT_DELIVERY, and S3 whenever the JPEG would "
                         "not fit Lambda's 6 MB response."),
    "regions": Spec("polygons",
                    doc="Where to look: a JSON list of polygons, each a list of [x, y] points as fractions (0 to 1) "
                        "of the upright picture's width and height, e.g. [[[0.49,0.74],[0.66,0.74],[0.66,0.92]]]. "
                        "Motion outside all of them is ignored, and motion inside is judged as if the rest of the "
                        "picture did not exist."),
    "exclude": Spec("polygons",
                    doc="Where never to look (a tree, a busy road, a burnt-in clock): polygons as for `regions`, "
                        "taken out after them."),
    "boxes": Spec(bool, doc="Outline on each tile the part of the picture that moved at the event's peak."),
    "start_time": Spec(datetime,
                       doc="When the first frame was recorded, ISO 8601 with an offset (2026-05-01T14:03:00+02:00): "
                           "events then also get clock times. Default: the recording time the container carries "
                           "(MP4/MOV creation_time, Matroska DATE_UTC), if any."),
    "timezone": Spec(ZoneInfo,
                     doc="IANA time zone name (Europe/Paris) in which clock times are shown; default: the offset of "
                         "`start_time`, else UTC."),
    "timeline": Spec(bool,
                     doc="`true` adds to the JSON every compared sample's time, motion score, whether it was a hit "
                         "and, where a change was set aside, why (lighting, camera_switch, usual, transient)."),
}

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Options:
    """Per-request options; see ``OPTION_SPECS`` for what each means."""

    format: str = "jpeg"
    step: float = 0.5
    cooldown: float = 2.0
    sensitivity: float = 0.5
    columns: int = 4
    tile_width: int = 320
    max_tiles: int = 24
    interval: float = 1.0
    timestamps: tuple[float, ...] | None = None
    delivery: str | None = None
    # Polygons of (x, y) fractions of the upright picture; see regions.py.
    regions: tuple[tuple[tuple[float, float], ...], ...] | None = None
    exclude: tuple[tuple[tuple[float, float], ...], ...] | None = None
    boxes: bool = True
    # ISO 8601 text (JSON-safe for segment workers); a naive time given with ``timezone`` is in that zone.
    start_time: str | None = None
    timezone: str | None = None
    timeline: bool = False

    def frame_times(self, count: int) -> list[float]:
        """The times of a burst's ``count`` frames: ``timestamps`` if given, else ``interval`` apart."""
        return list(self.timestamps) if self.timestamps else [i * self.interval for i in range(count)]

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> "Options":
        """Options from raw string fields; refuses unknown names and bad values with a 400."""
        values = {}
        for name, raw in fields.items():
            spec = OPTION_SPECS.get(name)
            if spec is None:
                known = ", ".join(sorted(OPTION_SPECS))
                raise bad_request("unknown_option", f"Unknown option {name!r}. Known options: {known}.")
            values[name] = _convert(name, str(raw).strip(), spec)
        start = values.get("start_time")
        if start is not None and datetime.fromisoformat(start).tzinfo is None:
            if values.get("timezone") is None:
                raise bad_request("bad_option", f"Option 'start_time' needs an offset (e.g. {start}+02:00, or Z for "
                                                "UTC), or a 'timezone' to read it in.")
            values["start_time"] = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(values["timezone"])).isoformat()
        return cls(**values)


def parse_polygons(name: str, raw: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Polygons from the API's JSON (a list of polygons, or one polygon) or the CLI's short form
    ("x,y x,y x,y", polygons separated by ";"); refuses anything that is not 3 to ``MAX_POINTS``
    points within 0..1, at most ``MAX_POLYGONS`` of them, with a 400 that says what is wrong."""
    if raw.startswith("["):
        try:
            polygons = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested deeper than Python goes
            raise bad_request("bad_option", f"Option {name!r} is not valid JSON: expected a list of polygons such as "
                                            "[[[0.1,0.5],[0.6,0.5],[0.6,0.9]]].") from None
        if isinstance(polygons, list) and polygons and isinstance(polygons[0], list) and polygons[0] \
                and not isinstance(polygons[0][0], list):
            polygons = [polygons]  # one polygon on its own
    else:
        try:
            polygons = [[[float(v) for v in point.split(",")] for point in polygon.split()]
                        for polygon in raw.split(";") if polygon.strip()]
        except ValueError:
            raise bad_request("bad_option", f"Option {name!r} must be JSON, or points \"x,y x,y x,y\" (fractions of "
                                            "the picture) with polygons separated by \";\".") from None
    if not isinstance(polygons, list) or not polygons:
        raise bad_request("bad_option", f"Option {name!r} must be a non-empty list of polygons.")
    if len(polygons) > MAX_POLYGONS:
        raise bad_request("bad_option", f"Option {name!r} has {len(polygons)} polygons; at most {MAX_POLYGONS}.")
    checked = []
    for number, polygon in enumerate(polygons, 1):
        what = f"Option {name!r}, polygon {number}"
        if not isinstance(polygon, list):
            raise bad_request("bad_option", f"{what} must be a list of [x, y] points.")
        if len(polygon) < 3:
            raise bad_request("bad_option", f"{what} has {len(polygon)} point{'s' if len(polygon) != 1 else ''}; "
                                            "a polygon needs at least 3.")
        if len(polygon) > MAX_POINTS:
            raise bad_request("bad_option", f"{what} has {len(polygon)} points; at most {MAX_POINTS}.")
        points = []
        for point in polygon:
            if not (isinstance(point, list) and len(point) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
                raise bad_request("bad_option", f"{what}: each point must be [x, y], two numbers; got {json.dumps(point)}.")
            x, y = float(point[0]), float(point[1])
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise bad_request("bad_option", f"{what}: point [{point[0]}, {point[1]}] is outside the picture; "
                                                "x and y are fractions of its width and height, from 0 to 1.")
            points.append((x, y))
        checked.append(tuple(points))
    return tuple(checked)


def _convert(name: str, raw: str, spec: Spec):
    if spec.kind == "polygons":
        return parse_polygons(name, raw)
    if spec.kind is bool:
        if raw.lower() not in _TRUE + _FALSE:
            raise bad_request("bad_option", f"Option {name!r} must be true or false; got {raw!r}.")
        return raw.lower() in _TRUE
    if spec.kind is datetime:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise bad_request("bad_option", f"Option {name!r} must be an ISO 8601 date and time with an offset, e.g. "
                                            f"2026-05-01T14:03:00+02:00; got {raw!r}.") from None
        if not 1900 <= when.year <= 2999:  # and far from datetime's limits, which adding hours must not cross
            raise bad_request("bad_option", f"Option {name!r} must be a year from 1900 to 2999; got {raw!r}.")
        return when.isoformat()
    if spec.kind is ZoneInfo:
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise bad_request("bad_option", f"Option {name!r} must be an IANA time zone name such as Europe/Paris or "
                                            f"America/New_York; got {raw!r}.") from None
        return raw
    if isinstance(spec.kind, tuple):
        if raw.lower() not in spec.kind:
            raise bad_request("bad_option", f"Option {name!r} must be one of {', '.join(spec.kind)}; got {raw!r}.")
        return raw.lower()
    if spec.kind is list:
        try:
            times = tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise bad_request("bad_option", f"Option {name!r} must be comma-separated seconds, e.g. 0,1.5,3.") from None
        if not times or any(t < 0 or t != t or t == float("inf") for t in times):
            raise bad_request("bad_option", f"Option {name!r} must list non-negative, finite seconds.")
        if any(b < a for a, b in zip(times, times[1:])):
            raise bad_request("bad_option", f"Option {name!r} must be in increasing order.")
        return times
    try:
        value = spec.kind(raw)
    except ValueError:
        raise bad_request("bad_option", f"Option {name!r} must be a{'n integer' if spec.kind is int else ' number'}; got {raw!r}.") from None
    if value != value or not (spec.low <= value <= spec.high):
        raise bad_request("bad_option", f"Option {name!r} must be between {spec.low:g} and {spec.high:g}; got {raw}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Deployment settings, read from the environment (``from_env``, cheap enough to call per request)."""

    # Largest request body accepted; the default is what fits through API Gateway into a Lambda
    # invoke once base64-encoded. The local gateway enforces the event size itself.
    max_upload_bytes: int = 4_400_000
    # S3 bucket for montages too big for the response or asked for with delivery=s3.
    results_bucket: str | None = None
    # Seconds a presigned montage URL stays valid.
    url_expiry: int = 3600
    # Where montages go when the request does not say: inline or s3.
    default_delivery: str = "inline"
    # Frames larger than this many pixels are refused (a decompression bomb or a bogus header).
    max_pixels: int = 8192 * 8192
    # Clips longer than this many seconds are refused before decoding starts.
    max_duration: float = 6 * 3600.0
    # Frame bursts with more frames than this are refused.
    max_frames: int = 1000

    # -- where a clip comes from (sources.py) --
    # Largest clip taken from S3 (POST /uploads' presigned policy enforces it) or from a movie_url.
    # 2 GiB is about an hour of 1080p camera footage at 4.5 Mbit/s; a movie_url is downloaded to
    # /tmp, so the function's ephemeral storage must be larger than this.
    max_source_bytes: int = 2 * 1024 ** 3
    # Seconds a presigned upload (POST /uploads) can be used for.
    upload_expiry: int = 900
    # movie_url: seconds to connect and to wait for each read, and for the whole download.
    fetch_timeout: float = 10.0
    fetch_total_timeout: float = 120.0
    # Let movie_url reach loopback addresses (127.0.0.0/8, ::1), for the local gateway in tests only;
    # private, link-local and other non-public addresses are refused whatever this says.
    allow_loopback_urls: bool = False

    # Decoder threads per analysis (0: FFmpeg's one per core). On Lambda, one per vCPU the memory
    # buys (1769 MB is one): the function sees two cores up to 3008 MB whatever its share, and a
    # second thread on one vCPU only adds the cost of sharing it (a tenth more CPU for H.264).
    # Processes of a pool decode on one thread each, whatever this says.
    decoder_threads: int = 0

    # -- long clips, cut into segments analysed in parallel (segments.py, runners.py) --
    # The shortest segment worth a worker of its own, and the clip length from which a clip is cut
    # at all. Measured (bench/parallel.py): 720p at 15 fps, decoded in full, costs ~1 s of one core
    # per 16 s of clip; starting a segment costs ~1.5 s on Lambda (1.1 s import, opening the clip
    # over HTTP) and ~1 s locally (a spawned process): a 60 s segment is mostly work, and a clip
    # under 90 s is done in one pass about as fast as its segments could be started.
    segment_seconds: float = 60.0
    fanout_threshold: float = 90.0
    # local: a process pool on this machine; lambda: the function invokes itself once per segment;
    # off: always one pass.
    fanout: str = "local"
    # Local segment processes at once (0 = one per core); Lambda uses fanout_concurrency.
    workers: int = 0
    # An hour of such footage in 20 segments of 3 min is ~12 s of work each, within API Gateway's 29 s.
    fanout_concurrency: int = 20

    # -- jobs: a clip analysed in the background (jobs.py, runners.py, callbacks.py) --
    # Where the local server keeps jobs (records, stored inputs, montages) when no RESULTS_BUCKET is
    # set; with one, jobs live in the bucket under jobs/. A directory that outlives the server, so
    # that a restart of `make run` picks up what was queued or running.
    data_dir: str = "~/.local/share/vimo"
    # Jobs the local server runs at once (each one already uses every core for its segments);
    # 0 runs none (jobs then wait for a server that does).
    job_workers: int = 1
    # The key that signs callbacks (X-Vimo-Signature: sha256=HMAC-SHA256 of the body); a job with a
    # callback_url is refused without one, since an unsigned callback could come from anyone.
    webhook_secret: str | None = None
    # A callback is tried this many times in all, waiting callback_backoff * 2**n seconds between
    # tries (the first retry at once), while the receiver cannot be reached or answers 429 or 5xx.
    callback_attempts: int = 5
    callback_backoff: float = 2.0
    # On AWS: the Step Functions state machine that runs jobs (template.yaml sets it); unset, jobs
    # wait in the store's queue for a local server.
    state_machine_arn: str | None = None
    # A Dask scheduler (tcp://host:8786) that runs the segments of jobs instead of this machine's
    # cores; its workers need vimo installed and must be able to open the clip (a local path only
    # on this machine: use an S3 bucket for a cluster of several machines).
    dask_scheduler: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            results_bucket=env.get("RESULTS_BUCKET") or None,
            url_expiry=int(env.get("URL_EXPIRY", cls.url_expiry)),
            default_delivery=env.get("DEFAULT_DELIVERY", cls.default_delivery),
            max_pixels=int(env.get("MAX_PIXELS", cls.max_pixels)),
            max_duration=float(env.get("MAX_DURATION", cls.max_duration)),
            max_frames=int(env.get("MAX_FRAMES", cls.max_frames)),
            max_source_bytes=int(env.get("MAX_SOURCE_BYTES", cls.max_source_bytes)),
            upload_expiry=int(env.get("UPLOAD_EXPIRY", cls.upload_expiry)),
            fetch_timeout=float(env.get("FETCH_TIMEOUT", cls.fetch_timeout)),
            fetch_total_timeout=float(env.get("FETCH_TOTAL_TIMEOUT", cls.fetch_total_timeout)),
            allow_loopback_urls=env.get("VIMO_ALLOW_LOOPBACK_URLS", "") in ("1", "true", "yes"),
            decoder_threads=int(env.get("DECODER_THREADS", _lambda_vcpus(env) or cls.decoder_threads)),
            segment_seconds=float(env.get("SEGMENT_SECONDS", cls.segment_seconds)),
            fanout_threshold=float(env.get("FANOUT_THRESHOLD", cls.fanout_threshold)),
            fanout=env.get("FANOUT", cls.fanout),
            workers=int(env.get("WORKERS", cls.workers)),
            fanout_concurrency=int(env.get("FANOUT_CONCURRENCY", cls.fanout_concurrency)),
            data_dir=env.get("DATA_DIR") or cls.data_dir,
            job_workers=int(env.get("JOB_WORKERS", cls.job_workers)),
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            callback_attempts=int(env.get("CALLBACK_ATTEMPTS", cls.callback_attempts)),
            callback_backoff=float(env.get("CALLBACK_BACKOFF", cls.callback_backoff)),
            state_machine_arn=env.get("STATE_MACHINE_ARN") or None,
            dask_scheduler=env.get("DASK_SCHEDULER") or None,
        )


def _lambda_vcpus(env: Mapping[str, str]) -> int:
    """vCPUs of a Lambda function's memory (one per 1769 MB, at least one), 0 off Lambda."""
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    return max(1, int(memory) // 1769) if memory else 0
