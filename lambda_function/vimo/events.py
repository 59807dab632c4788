"""Motion scores -> events: spans of real motion, each with the moment it peaked.

A person crossing the view for ten seconds is one event, not twenty hits: hits closer together than
``cooldown`` seconds join one event. Each event keeps the picture of its peak sample as a tile,
made when the event closes, so only the frames of open events are ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from PIL import Image

from . import clock
from .motion import Motion


def hhmmss(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class Event:
    """A span of motion, timed as closely as the sampling allows (see ``EventBuilder``); ``peak`` is
    the sample with the most motion, and the tile shows it.

    The span always holds its peak (``start <= peak <= end``), whoever made the event: each edge is
    only an estimate of when the motion began or ended between two samples, while the peak is a
    sample that shows it. So when the strongest change is the last hit (a picture that changed at
    once) the event ends at its peak, not between it and the sample before. Frozen, so that re-timing
    an edge (``dataclasses.replace``) or joining two pieces goes through this same rule.
    """

    start: float
    end: float
    peak: float
    score: float
    tile: Image.Image | None = field(default=None, repr=False, compare=False)
    # What moved at the peak: (x, y, w, h) fractions of the upright picture (see motion.Motion.box).
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "start", max(0.0, min(self.start, self.peak)))
        object.__setattr__(self, "end", max(self.end, self.peak))

    @property
    def label(self) -> str:
        return hhmmss(self.peak)

    def label_at(self, origin: datetime | None) -> str:
        """What the tile is stamped with: the peak's clock time when the recording time is known."""
        return clock.at(origin, self.peak).strftime("%H:%M:%S") if origin else self.label

    def to_dict(self, origin: datetime | None = None) -> dict:
        """As JSON; with ``origin`` (when the first frame was recorded) also the clock times."""
        result = {"start": round(self.start, 3), "end": round(self.end, 3), "peak": round(self.peak, 3),
                  "score": round(self.score, 5), "label": self.label_at(origin)}
        if self.box is not None:
            result["box"] = list(self.box)
        if origin is not None:
            for name in ("start", "end", "peak"):
                result[f"{name}_at"] = clock.iso(clock.at(origin, getattr(self, name)))
        return result


@dataclass
class _OpenEvent:
    start: float
    last_hit: float
    before_last_hit: float  # the sample before the last hit: the motion ended between the two
    peak: Motion
    still_since_last_hit: bool = False


class EventBuilder:
    """Groups hits into events; feed ``Motion`` in time order, then ``close``.

    A hit at time t says the picture changed between the previous sample and t, so an event
    starts halfway between its first hit and the sample before, and ends halfway between its last
    hit and the sample before that: unbiased whatever the spacing of the samples. Hits in a row
    are one event however far apart the samples are (nothing says the motion stopped); still
    samples between two hits more than ``cooldown`` apart end one event and start the next.
    """

    def __init__(self, cooldown: float, tile_width: int):
        self.cooldown = cooldown
        self.tile_width = tile_width
        self.events: list[Event] = []
        self._open: _OpenEvent | None = None
        self._last_time: float | None = None

    def feed(self, motion: Motion) -> None:
        previous_time, self._last_time = self._last_time, motion.time
        previous_time = motion.time if previous_time is None else previous_time
        event = self._open
        if event is not None and event.still_since_last_hit and motion.time - event.last_hit > self.cooldown:
            self._close()
            event = None
        if not motion.hit:
            motion.sample.release()
            if event is not None:
                event.still_since_last_hit = True
            return
        if event is None:
            self._open = _OpenEvent(start=(previous_time + motion.time) / 2, last_hit=motion.time,
                                    before_last_hit=previous_time, peak=motion)
            return
        event.last_hit, event.before_last_hit, event.still_since_last_hit = motion.time, previous_time, False
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
        tile = event.peak.sample.picture(self.tile_width)
        event.peak.sample.release()
        self.events.append(Event(start=event.start, end=(event.before_last_hit + event.last_hit) / 2,
                                 peak=event.peak.time, score=event.peak.score, tile=tile, box=event.peak.box))


def build_events(motions: Iterable[Motion], cooldown: float, tile_width: int) -> list[Event]:
    builder = EventBuilder(cooldown, tile_width)
    for motion in motions:
        builder.feed(motion)
    return builder.close()
