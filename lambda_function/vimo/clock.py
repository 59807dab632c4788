"""Seconds from the first frame -> the camera's clock: when the clip was recorded, and when each event was.

Camera owners think in wall-clock time ("what happened at 14:03?"). A container often says when it
was recorded (MP4/MOV ``creation_time``, Apple's ``com.apple.quicktime.creationdate`` with the
camera's own offset, Matroska's ``DATE_UTC``, which FFmpeg also reports as ``creation_time``); the
``start_time`` option overrides it. Times are shown with the offset they were given in, or in the
``timezone`` option's zone, else in UTC. Without a recording time nothing changes: no ``*_at``
fields, and tiles count from the start of the clip.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as tz
from typing import Mapping
from zoneinfo import ZoneInfo

# Container tags that say when recording started, most trusted first: Apple's carries the camera's
# UTC offset; the others are UTC.
TAGS = ("com.apple.quicktime.creationdate", "creation_time", "date_utc", "date")
# Muxers write 1904-01-01 or 1970-01-01 (a zero timestamp) when nobody set the time: not a recording time.
EARLIEST = datetime(1980, 1, 1, tzinfo=tz.utc)
# A tag from a broken or hostile file can say anything; beyond this, adding a clip's length could
# overflow datetime.
LATEST = datetime(3000, 1, 1, tzinfo=tz.utc)


def container_time(*tag_sets: Mapping[str, str]) -> datetime | None:
    """The recording time the first of ``tag_sets`` (container, then stream metadata) that has one
    says, as an aware datetime (tags without an offset are UTC); None when none does."""
    for tags in tag_sets:
        lowered = {str(k).lower(): str(v) for k, v in (tags or {}).items()}
        for name in TAGS:
            value = lowered.get(name, "").strip()
            if not value:
                continue
            try:
                when = datetime.fromisoformat(value.replace(" ", "T", 1))
            except ValueError:
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=tz.utc)
            if EARLIEST <= when < LATEST:
                return when
    return None


def recording_start(start_time: str | None, timezone: str | None, from_container: datetime | None) -> datetime | None:
    """When the first frame was recorded (the ``start_time`` option, else the container's time), in
    the ``timezone`` option's zone if given; None when unknown."""
    when = datetime.fromisoformat(start_time) if start_time else from_container
    if when is None:
        return None
    return when.astimezone(ZoneInfo(timezone)) if timezone else when


def at(origin: datetime, seconds: float) -> datetime:
    """The clock time ``seconds`` after ``origin``, in ``origin``'s zone; counted in UTC, so that a
    clip that runs across a daylight-saving change is still right to the frame."""
    return (origin.astimezone(tz.utc) + timedelta(seconds=seconds)).astimezone(origin.tzinfo)


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
