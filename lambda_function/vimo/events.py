"""Motion scores -> events: spans of real motion, each with the moment it peaked.

A person crossing the view for ten seconds is one event, not twenty hits: hits closer together than
``cooldown`` seconds join one event. Each event keeps the picture of its peak sample as a tile,
made when the event closes, so only the frames of open events are ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from PIL import Image

from .motion import Motion


def hhmmss(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Event:
    """A span of motion. ``start``/``end`` are halfway between the last still sample and the first
    moving one (and back), the best estimate sampling allows; ``peak`` is the sample with the most
    motion, and the tile shows it."""

    start: float
    end: float
    peak: float
    score: float
    tile: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return hhmmss(self.peak)

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "peak": round(self.peak, 3),
                "score": round(self.score, 5), "label": self.label}


@dataclass
class _OpenEvent:
    start: float
    last_hit: float
    peak: Motion
    first_still: float | None = None  # the first sample without a hit since the last hit


class EventBuilder:
    """Groups hits into events; feed ``Motion`` in time order, then ``close``."""

    def __init__(self, cooldown: float, tile_width: int):
        self.cooldown = cooldown
        self.tile_width = tile_width
        self.events: list[Event] = []
        self._open: _OpenEvent | None = None
        self._last_time: float | None = None

    def feed(self, motion: Motion) -> None:
        previous_time, self._last_time = self._last_time, motion.time
        event = self._open
        if not motion.hit:
            motion.sample.release()
            if event is not None:
                event.first_still = motion.time if event.first_still is None else event.first_still
                if motion.time - event.last_hit > self.cooldown:
                    self._close()
            return
        if event is None:
            half_step = 0.0 if previous_time is None else (motion.time - previous_time) / 2
            self._open = _OpenEvent(start=motion.time - half_step, last_hit=motion.time, peak=motion)
            return
        event.last_hit, event.first_still = motion.time, None
        if motion.score > event.peak.score:
            event.peak.sample.release()
            event.peak = motion
        else:
            motion.sample.release()

    def close(self) -> list[Event]:
        """Close the open event, if any; returns all events, in time order."""
        if self._open is not None:
            self._close()
        return self.events

    def _close(self) -> None:
        event, self._open = self._open, None
        end = event.last_hit if event.first_still is None else (event.last_hit + event.first_still) / 2
        tile = event.peak.sample.picture(self.tile_width)
        event.peak.sample.release()
        self.events.append(Event(start=max(0.0, event.start), end=end, peak=event.peak.time, score=event.peak.score,
                                 tile=tile))


def build_events(motions: Iterable[Motion], cooldown: float, tile_width: int) -> list[Event]:
    builder = EventBuilder(cooldown, tile_width)
    for motion in motions:
        builder.feed(motion)
    return builder.close()
