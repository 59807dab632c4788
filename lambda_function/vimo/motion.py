"""Samples -> motion scores: how much of the picture really moved since the previous sample.

Things that change pixels without anything moving are the enemy of a motion montage. Each has its
own counter here, in the order the pipeline applies them:

1. Sensor and compression noise: frames are already area-averaged down to ``ANALYSIS_WIDTH`` and are
   blurred once more; a pixel counts as changed only when its difference stands out from the noise
   measured in *this* pair of frames (so a grainy night clip raises its own bar).
2. Lighting drift and flicker: the second frame's brightness is matched to the first's before
   comparing, so a scene growing brighter, or a lamp pulsing, changes nothing.
3. Isolated specks (leftover noise, raindrops): removed by a morphological opening.
4. Endless motion (leaves in the wind, drifting snow, water): it changes a scattered few pixels in
   the same neighbourhoods sample after sample, in gusts. So each neighbourhood has a usual density of
   change, a high quantile of its densities over the last ``HISTORY`` samples (long enough to
   span the lulls between gusts), and its changes count only when they are much denser than
   usual. Someone walking past is a dense patch where the usual is nearly nothing, and still a
   denser patch than the leaves behind them. The usual densities are learnt from the first
   samples before any of them is scored, so a clip that opens on a swaying tree starts quiet.
5. Things that are gone a moment later (snowflakes near the lens): only the changes around
   objects that make a steady track through three samples count, or large ones (see ``objects``).

What remains is scored as the fraction of the picture that moved; a sample is a hit when the
moving pixels in its busiest neighbourhood (CELL x 3 pixels square) are enough to be an object, so
that leftover specks scattered over the whole picture never add up to one.

Regions (``regions.View``): every step above sees only the pixels inside the caller's regions and
outside their exclusions, cropped to the regions' bounding box, as if the rest of the picture did
not exist: brightness matching, the noise level, the usual densities and the objects. Areas (hit
thresholds, object sizes, the score) stay fractions of the *whole* picture: a person is as large
whatever region they walk in, and a small region does not make noise in it count more.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from .objects import LARGE_AREA, MIN_AREA_OF_THRESHOLD, Blob, around, find_blobs, follow, square_counts, top_speed
from .regions import View

# A pixel changed if its difference exceeds NOISE_FACTOR times the pair's noise level (estimated from
# the median difference, which static pixels dominate), and never less than MIN_DIFFERENCE gray
# levels: an H.264 clip of a still scene has almost no noise, but blocky edges that shimmer.
NOISE_FACTOR = 4.5
MIN_DIFFERENCE = 10.0
# Neighbourhoods are a cell of CELL x CELL pixels of the analysis frame and the 3x3 cells around it.
# Their usual density of change is the USUAL_QUANTILE percentile of the last HISTORY samples (20 s
# at the default step), spread to the neighbouring cells; the first HISTORY samples are learnt
# before any is scored. Above the median, so that gusts of wind count as usual; well below the top,
# so that someone who stays in view for a while is not.
CELL = 8
HISTORY = 40
USUAL_QUANTILE = 60
# With fewer densities than this to go by (a handful of frames), nothing counts as usual: a short
# burst in which someone moves in most frames must not learn them as the background.
MIN_HISTORY = 16
# Changes count where a neighbourhood's density is over DENSITY_FACTOR times its usual density, or
# over it by DENSITY_MARGIN if that is less (in a blizzard the flakes change a fifth of every
# neighbourhood, and three times that is more than a person changes), and over MIN_DENSITY in any
# case (12 pixels: a person 3 % of the picture high, in one place).
DENSITY_FACTOR = 3.0
DENSITY_MARGIN = 0.2
MIN_DENSITY = 0.02
# Moving pixels needed in one neighbourhood for a hit, as a fraction of the analysis frame, at
# sensitivity 0 and 1 (log-interpolated between). At 0.5 that is 0.05 % of the picture (65 pixels
# at 480x270): a person 5 % of the picture high; half that on a steady track (TRACKED_SHARE).
AREA_AT_SENSITIVITY_0 = 0.0035
AREA_AT_SENSITIVITY_1 = 0.00008
# Where objects are followed, only what is around a real object is left to count, and a steady
# track is itself evidence: there a hit needs this share of the area.
TRACKED_SHARE = 0.5


@dataclass(frozen=True)
class Motion:
    """The motion measured at one sample: ``score`` is the fraction of the picture that moved."""

    time: float
    score: float
    hit: bool
    sample: object  # the frames.Sample, kept so an event can make its tile from its peak
    # What moved, for a hit: (x, y, w, h) fractions of the upright picture around its real objects.
    box: tuple[float, float, float, float] | None = None


def area_threshold(sensitivity: float) -> float:
    """The moving-area fraction that makes a hit at this sensitivity (0..1)."""
    low, high = math.log(AREA_AT_SENSITIVITY_0), math.log(AREA_AT_SENSITIVITY_1)
    return math.exp(low + (high - low) * sensitivity)


class UsualChange:
    """How densely each neighbourhood usually changes: the ``USUAL_QUANTILE`` percentile of its last
    ``HISTORY`` densities, spread to its neighbours; nothing until there are ``MIN_HISTORY``."""

    def __init__(self):
        self._history: deque[np.ndarray] = deque(maxlen=HISTORY)
        self._bar: np.ndarray | None = None  # the density to beat, from the usual densities

    def add(self, density: np.ndarray) -> None:
        if self._history and self._history[0].shape != density.shape:
            self._history.clear()
        self._history.append(density)
        self._bar = None

    def moving_cells(self, density: np.ndarray) -> np.ndarray:
        """Neighbourhoods changing much more densely than usual (nothing is usual yet for a picture
        size the history has not seen: a stream may change size mid-way)."""
        if self._bar is not None and self._bar.shape != density.shape:
            self._bar = None
        if self._bar is None:
            enough = len(self._history) >= MIN_HISTORY and self._history[-1].shape == density.shape
            usual = _spread(np.percentile(np.stack(self._history), USUAL_QUANTILE, axis=0)) if enough \
                else np.zeros_like(density)
            self._bar = np.maximum(MIN_DENSITY, np.minimum(DENSITY_FACTOR * usual, usual + DENSITY_MARGIN))
        return density > self._bar


def detect(samples: Iterable, sensitivity: float, usual: UsualChange | None = None,
           learning: bool = True, picture_width: int = 1280, regions=None, exclude=None) -> Iterator[Motion]:
    """The motion at each sample, in order.

    The first ``HISTORY`` samples are held back until the usual densities have been learnt from
    them; meanwhile their pictures wait shrunk to ``picture_width`` (the tile width), not as full
    frames. Each sample's verdict then waits for the three after it, which say whether what
    changed was an object (see ``objects``). Pass the ``usual`` of an earlier pass over the same
    clip, with ``learning=False``, to re-score a short stretch of it (an event's edge): too short
    to learn from or to follow objects in, so every change counts there, snow included; in snow,
    an edge found that way may lie up to the stretch's end from the truth. ``regions`` and
    ``exclude``: polygons of the upright picture (see ``regions``); only what is inside counts.
    """
    threshold = area_threshold(sensitivity)
    views = _Views(regions, exclude)
    changes = _changes(samples, UsualChange() if usual is None else usual, learning, picture_width, views)
    if not learning:
        return (_motion(change, threshold) for change in changes)
    return _follow(changes, threshold, top_speed(sensitivity))


@dataclass
class _Change:
    """A sample, the pixels that changed since the previous one in neighbourhoods moving more than
    usual (None for a first sample, which has nothing to compare), and, once the samples around
    it are known, its objects and which of them are real."""

    sample: object
    moving: np.ndarray | None
    blobs: list[Blob] = field(default_factory=list)
    real: set[Blob] = field(default_factory=set)
    view: View | None = None  # where in the picture ``moving`` (and the blobs) lie


class _Views:
    """The ``View`` of each picture size and rotation a stream brings (one, nearly always)."""

    def __init__(self, regions, exclude):
        self.regions, self.exclude = regions, exclude
        self._views: dict[tuple, View] = {}

    def __call__(self, sample) -> View:
        key = (sample.gray.shape, sample.rotation)
        if key not in self._views:
            self._views[key] = View.of(sample.gray.shape, sample.rotation, self.regions, self.exclude)
        return self._views[key]


def _changes(samples: Iterable, usual: UsualChange, learning: bool, picture_width: int,
             views: _Views) -> Iterator[_Change]:
    held: list[tuple] | None = [] if learning else None  # (sample, changed pixels, densities, view)
    previous = previous_view = None
    for sample in samples:
        view = views(sample)  # before ``shrink``, which turns the picture (not the gray copy) upright
        frame = _blur(view.crop(sample.gray).astype(np.float32))
        changed = density = None
        if previous is not None and previous_view is view:
            changed = changed_pixels(previous, frame, view.inside, view.cropped)
            density = _density(square_counts(changed, CELL))
            if learning:
                usual.add(density)
        previous, previous_view = frame, view
        if held is not None and len(held) < HISTORY:
            sample.shrink(picture_width)
            held.append((sample, changed, density, view))
            continue
        if held:
            for waiting in held:
                yield _change(*waiting, usual)
            held = None
        yield _change(sample, changed, density, view, usual)
    for waiting in held or ():
        yield _change(*waiting, usual)


def _change(sample, changed: np.ndarray | None, density: np.ndarray | None, view: View,
            usual: UsualChange) -> _Change:
    if changed is None:
        return _Change(sample, None, view=view)
    cells = usual.moving_cells(density)
    pixels = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)[:changed.shape[0], :changed.shape[1]]
    return _Change(sample, changed & pixels, view=view)


def _follow(changes: Iterator[_Change], threshold: float, speed: float) -> Iterator[Motion]:
    """Scores each change counting only the pixels around real objects: those of the sample and of
    the one before (the change since then shows both where an object was and where it is); those
    need only ``TRACKED_SHARE`` of the area of a hit.

    A sample's objects are known once the next sample is; the tracks through it, once the one after
    that is; and a track may start at it, so its verdict waits for the three samples after it.
    Those wait in ``recent``, with the one being scored and the one before it. Three empty changes
    after the last flush the stream.
    """
    recent: deque[_Change] = deque(maxlen=5)
    end = _Change(None, None)
    for change in itertools.chain(changes, (end, end, end)):
        if recent and recent[-1] is not end:
            _find_objects(recent[-1], change, recent[-3] if len(recent) >= 3 else None, threshold)
        recent.append(change)
        if len(recent) >= 4 and recent[-3].moving is not None:  # tracks through the last with known objects but one
            before, now, after = recent[-4], recent[-3], recent[-2]
            times = tuple(c.sample.time if c is not end else now.sample.time for c in (before, now, after))
            for blob in follow(before.blobs, now.blobs, after.blobs, now.view.shape, times, speed):
                for c in (before, now, after):
                    if blob in c.blobs:
                        c.real.add(blob)
        if len(recent) < 4 or recent[-4] is end:
            continue
        scored = recent[-4]
        before = recent[-5] if len(recent) == 5 else end
        if scored.moving is not None:
            scored.moving = scored.moving & around(scored.real | before.real, scored.moving.shape)
        yield _motion(scored, threshold * TRACKED_SHARE)


def _find_objects(change: _Change, after: _Change, earlier: _Change | None, threshold: float) -> None:
    """The objects of ``change``: where it changed both before and after it, yet does not look
    as it did two samples ago (else a flake there in the sample before and another in the sample
    after leave the outline of an object where there was none); and each patch of its change large
    enough to be an object by itself (also where there is no sample after it, or where brightness
    matching went wrong around a large object: it needs no track anyway)."""
    moving, view = change.moving, change.view
    if moving is None:
        return
    if after.moving is not None and after.view is view:
        there = moving & after.moving
        if earlier is not None and earlier.view is view and there.any():
            there &= _unlike(view.crop(earlier.sample.gray), view.crop(change.sample.gray), view.inside, view.cropped)
        change.blobs = find_blobs(there, MIN_AREA_OF_THRESHOLD * threshold * view.pixels)
    large = LARGE_AREA * view.pixels
    if np.count_nonzero(moving) >= large:
        change.blobs += [b for b in find_blobs(moving, large) if b not in change.blobs]


def _unlike(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None, robust: bool = False) -> np.ndarray:
    """Pixels of two gray samples, brightness matched, more than ``MIN_DIFFERENCE`` apart: a
    bar that noise clears often, so that noise only ever keeps what this test would remove."""
    return np.abs(a.astype(np.float32) - b * np.float32(_gain(a, b, inside, robust))) > MIN_DIFFERENCE


def _gain(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None, robust: bool = False) -> float:
    """What ``b`` is multiplied by to be as bright as ``a`` (lighting drift, flicker), judged
    ``inside`` the regions only (a bright lorry outside them must not dim what is inside).

    ``robust`` (in regions): the median of the pixels' ratios, every 4th pixel of every 2nd row, not
    the ratio of the means: one object may fill a third of a small region, and would darken or
    brighten the means as much as a lighting change; it moves the median only once it fills half."""
    if robust:
        a, b = a[::2, ::4], b[::2, ::4]
        inside = None if inside is None else inside[::2, ::4]
    if inside is not None:
        if not inside.any():
            return 1.0
        a, b = a[inside], b[inside]
    if robust:
        return float(np.median((a + np.float32(1.0)) / (b + np.float32(1.0))))
    return (float(a.mean()) + 1.0) / (float(b.mean()) + 1.0)


def _motion(change: _Change, threshold: float) -> Motion:
    sample = change.sample
    if change.moving is None:
        return Motion(sample.time, 0.0, False, sample)
    counts = square_counts(change.moving, CELL)
    pixels = change.view.pixels
    score = float(counts.sum()) / pixels
    hit = float(_neighbourhoods(counts).max()) >= threshold * pixels
    return Motion(sample.time, score, hit, sample, _box(change) if hit else None)


def _box(change: _Change) -> tuple[float, float, float, float] | None:
    """What moved at a sample, as fractions of the upright picture: the moving pixels around its
    real objects (an object's parts that overlap where it was a sample before do not change, so its
    object alone can be narrower than it, but the change since then spans it); without objects
    (re-timing an edge, where they are not followed), all its moving pixels."""
    moving = change.moving
    if change.real:
        moving = moving & around(change.real, moving.shape)
    rows, cols = np.flatnonzero(moving.any(axis=1)), np.flatnonzero(moving.any(axis=0))
    if not len(rows):
        return None
    return change.view.box(int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0]))


def changed_pixels(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None,
                   robust: bool = False) -> np.ndarray:
    """Pixels that changed between two blurred gray frames, beyond noise and lighting (``inside``:
    only those pixels are looked at, and only they tell the noise level; ``robust``: see ``_gain``)."""
    difference = np.abs(a - b * _gain(a, b, inside, robust))
    # The median of |N(0, s)| is 0.6745 s; every 4th pixel of every 2nd row estimates it as well.
    sample = difference[::2, ::4]
    if inside is not None:
        sample = sample[inside[::2, ::4]]
        if sample.size < 64:  # a thin region may miss the sparse grid: use every pixel of it
            sample = difference[inside]
        if not sample.size:
            return np.zeros(difference.shape, bool)
    noise = float(np.median(sample)) / 0.6745
    changed = difference > max(MIN_DIFFERENCE, NOISE_FACTOR * noise)
    if inside is not None:
        changed &= inside
    return _open(changed)


def _neighbourhoods(cells: np.ndarray) -> np.ndarray:
    """Each cell's value summed with its 3x3 neighbours' (none beyond the picture's edges)."""
    p = _pad(cells, edge=False)
    p = p[:-2] + p[1:-1] + p[2:]
    return p[:, :-2] + p[:, 1:-1] + p[:, 2:]


def _density(counts: np.ndarray) -> np.ndarray:
    """Fraction of changed pixels in each cell's 3x3-cell neighbourhood (what lies beyond the
    picture counts as unchanged, here as in ``_neighbourhoods``)."""
    return _neighbourhoods(counts) / (9 * CELL * CELL)


def _spread(cells: np.ndarray) -> np.ndarray:
    """Each cell's value raised to the largest of its 3x3 neighbours'."""
    p = _pad(cells)
    p = np.maximum(np.maximum(p[:-2], p[1:-1]), p[2:])
    return np.maximum(np.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])


def _pad(x: np.ndarray, edge: bool = True) -> np.ndarray:
    """``x`` with a one-pixel border, repeating its edges (or zero); np.pad costs ten times more."""
    shape = (x.shape[0] + 2, x.shape[1] + 2)
    p = np.empty(shape, x.dtype) if edge else np.zeros(shape, x.dtype)
    p[1:-1, 1:-1] = x
    if edge:
        p[0, 1:-1], p[-1, 1:-1] = x[0], x[-1]
        p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    return p


def _blur(x: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur, edges repeated."""
    x = _pad(x)
    x = x[:-2] + 2 * x[1:-1] + x[2:]
    return (x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]) * (1 / 16)


def _open(mask: np.ndarray) -> np.ndarray:
    """Morphological opening with a 3x3 square: removes specks and streaks narrower than three
    pixels (raindrops, noise); a person 3 % of the picture high is four pixels wide."""
    return _dilate(_erode(mask))


def _erode(m: np.ndarray) -> np.ndarray:
    p = _pad(m, edge=False)
    rows = p[:-2] & p[1:-1] & p[2:]
    return rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]


def _dilate(m: np.ndarray) -> np.ndarray:
    p = _pad(m, edge=False)
    rows = p[:-2] | p[1:-1] | p[2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]
