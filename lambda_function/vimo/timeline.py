"""Motion scores -> the timeline: what vimo saw at every sample it compared, and why a change that
did not count was set aside (``timeline=true``).

Recorded as the motion streams past to the event builder (PySceneDetect keeps its per-frame
metrics the same way), so it costs a tuple per sample. In JSON it is compact, one row per sample::

    {"fields": ["t", "score", "hit", "reason"], "samples": [[0.5, 0.0, 0, null], [1.0, 0.0123, 1, null], ...]}

``t`` seconds, ``score`` the fraction of the picture that moved, ``hit`` 1 when that was motion,
``reason`` why a change did not count (``motion.LIGHTING``, ``CAMERA_SWITCH``, ``USUAL``,
``TRANSIENT``) or null. The samples are those every path compared, in time order: a keyframe pass
and the finer samples that re-timed its events' edges, or a full decode; a long clip's segments,
or a burst's frames.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from .motion import Motion

FIELDS = ("t", "score", "hit", "reason")


class Timeline:
    """Samples by time: (score, hit, reason)."""

    def __init__(self, rows: Iterable[Sequence] = ()):
        self._rows: dict[float, tuple[float, bool, str | None]] = {}
        for t, score, hit, reason in rows:
            self._rows[round(float(t), 3)] = (float(score), bool(hit), reason)

    def record(self, motions: Iterable[Motion], first: bool = True) -> Iterator[Motion]:
        """Passes ``motions`` on, keeping each one's row. Where a time is already known, ``first``
        keeps the row there (a re-timed edge re-scores keyframes the first pass followed objects
        through, and that pass's verdict stands)."""
        for motion in motions:
            t = round(motion.time, 3)
            if not (first and t in self._rows):
                self._rows[t] = (float(motion.score), bool(motion.hit), motion.reason)
            yield motion

    @classmethod
    def merged(cls, timelines: Iterable["Timeline | None"]) -> "Timeline":
        """The timelines of a clip's segments as one: where two give the same time (a segment starts
        from the last sample of the one before, which it only compares the next with), the row that
        says more (a hit, a reason, a higher score) is kept."""
        merged = cls()
        for timeline in timelines:
            for t, row in (timeline._rows.items() if timeline is not None else ()):
                known = merged._rows.get(t)
                if known is None or _weight(row) > _weight(known):
                    merged._rows[t] = row
        return merged

    def rows(self) -> list[list]:
        return [[t, round(score, 5), int(hit), reason] for t, (score, hit, reason) in sorted(self._rows.items())]

    def to_dict(self) -> dict:
        return {"fields": list(FIELDS), "samples": self.rows()}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Timeline | None":
        return None if data is None else cls(data["samples"])

    def __len__(self) -> int:
        return len(self._rows)


def _weight(row: tuple) -> tuple:
    score, hit, reason = row
    return hit, reason is not None, score
