"""Samples -> motion scores: how much of the picture really moved since the previous sample.

Things that change pixels without anything moving are the enemy of a motion montage. Each has its
own counter here, in the order the pipeline applies them:

1. Sensor and compression noise: frames are already area-averaged down to ``ANALYSIS_WIDTH`` and are
   blurred once more; a pixel counts as changed only when its difference stands out from the noise
   measured in *this* pair of frames (so a grainy night clip raises its own bar).
2. Lighting drift and flicker: the second frame's brightness is matched to the first's before
   comparing, so a scene growing brighter, or a lamp pulsing, changes nothing.
3. Rain, snow and leftover noise: isolated changed pixels are removed by a morphological opening;
   a person or a car is a solid patch, a raindrop is a speck.
4. Foliage, water and other endless motion: pixels that have been changing most of the recent past
   are dynamic background and do not count; someone walking through is new.

What remains is scored as the fraction of the picture that moved. ``MotionDetector`` is a pure
function of the samples it has seen, so a clip analysed in segments scores the same once each
segment is primed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A pixel moved if its difference exceeds NOISE_FACTOR times the pair's noise level (estimated from
# the median difference, which static pixels dominate), and never less than MIN_DIFFERENCE gray
# levels: an H.264 clip of a still scene has almost no noise, but blocky edges that shimmer.
NOISE_FACTOR = 4.5
MIN_DIFFERENCE = 10.0
# How quickly a pixel's activity forgets (per sample) and how busy it must be to count as
# dynamic background: at two samples a second, changing in 40 % of the last ~10 s.
ACTIVITY_RATE = 0.05
DYNAMIC_BACKGROUND = 0.4
# Moving-area fraction needed for a hit, at sensitivity 0 and 1 (log-interpolated between).
AREA_AT_SENSITIVITY_0 = 0.02
AREA_AT_SENSITIVITY_1 = 0.00005


@dataclass(frozen=True)
class Motion:
    """The motion measured at one sample: ``score`` is the fraction of the picture that moved."""

    time: float
    score: float
    hit: bool
    sample: object  # the frames.Sample, kept so an event can make its tile from its peak


def area_threshold(sensitivity: float) -> float:
    """The moving-area fraction that makes a hit at this sensitivity (0..1)."""
    low, high = math.log(AREA_AT_SENSITIVITY_0), math.log(AREA_AT_SENSITIVITY_1)
    return math.exp(low + (high - low) * sensitivity)


class MotionDetector:
    """Compares each sample with the one before it; feed samples in time order."""

    def __init__(self, sensitivity: float = 0.5):
        self.threshold = area_threshold(sensitivity)
        self._previous: np.ndarray | None = None
        self._activity: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (after a jump in time) but keep what is dynamic background."""
        self._previous = None

    def __call__(self, sample) -> Motion:
        frame = _blur(sample.gray.astype(np.float32))
        previous, self._previous = self._previous, frame
        if previous is None or previous.shape != frame.shape:
            return Motion(sample.time, 0.0, False, sample)
        moved = changed_pixels(previous, frame)
        if self._activity is None:
            self._activity = np.zeros(moved.shape, np.float32)
        background = self._activity > DYNAMIC_BACKGROUND
        self._activity += ACTIVITY_RATE * (moved - self._activity)
        moving = moved & ~background
        score = float(np.count_nonzero(moving)) / moving.size
        return Motion(sample.time, score, score >= self.threshold, sample)


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels that changed between two blurred gray frames, beyond noise and lighting."""
    gain = (float(a.mean()) + 1.0) / (float(b.mean()) + 1.0)
    difference = np.abs(a - b * gain)
    noise = float(np.median(difference)) / 0.6745  # median of |N(0, s)| is 0.6745 s
    changed = difference > max(MIN_DIFFERENCE, NOISE_FACTOR * noise)
    return _open(changed)


def _blur(x: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur, edges repeated."""
    x = np.pad(x, 1, mode="edge")
    x = x[:-2] + 2 * x[1:-1] + x[2:]
    return (x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]) * (1 / 16)


def _open(mask: np.ndarray) -> np.ndarray:
    """Morphological opening with a 3x3 square: removes specks narrower than three pixels."""
    return _dilate(_erode(mask))


def _erode(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1, mode="constant", constant_values=False)
    rows = p[:-2] & p[1:-1] & p[2:]
    return rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]


def _dilate(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1, mode="constant", constant_values=False)
    rows = p[:-2] | p[1:-1] | p[2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]
