"""Every tunable of vimo, with its default and why, in one place.

Two kinds of configuration live here:

* ``Options``: what a caller may set per request, as form fields or query parameters (the CLI takes
  the same names as flags). Unknown names and out-of-range values are refused, never ignored, so a
  typo such as ``sensitivty=0.9`` cannot silently give a different montage.
* ``Settings``: what the deployment sets through environment variables (the SAM template sets them
  on AWS; the local gateway and the CLI read the same variables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import bad_request

# Lambda refuses an invoke payload over 6 MB (6,291,456 bytes). API Gateway base64-encodes binary
# bodies, so about 4.4 MB of raw upload fits; a JPEG answer has the same ceiling.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024


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
    "timeline": Spec(bool,
                     doc="`true` adds to the JSON every compared sample's time, motion score, whether it was a hit "
                         "and, where a change was set aside, why (lighting, camera_switch, usual, transient)."),
}


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
    timeline: bool = False

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
        return cls(**values)


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _convert(name: str, raw: str, spec: Spec):
    if spec.kind is bool:
        if raw.lower() not in _BOOLEANS:
            raise bad_request("bad_option", f"Option {name!r} must be true or false; got {raw!r}.")
        return _BOOLEANS[raw.lower()]
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

    # -- long clips, cut into segments analysed in parallel (segments.py) --
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
            segment_seconds=float(env.get("SEGMENT_SECONDS", cls.segment_seconds)),
            fanout_threshold=float(env.get("FANOUT_THRESHOLD", cls.fanout_threshold)),
            fanout=env.get("FANOUT", cls.fanout),
            workers=int(env.get("WORKERS", cls.workers)),
            fanout_concurrency=int(env.get("FANOUT_CONCURRENCY", cls.fanout_concurrency)),
        )
