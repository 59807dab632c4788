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

Before all that, the camera itself. When the brightness moved by more than flicker moves it, or
the picture lost (or regained) its colour, and the brightness of nearly every part of the picture
stepped (``_global``), the camera or the light did it, not something in the scene: an exposure
step (auto-exposure, a cloud, a lamp switched on: through the camera's tone curve, no gain of the
picture), or the infrared night mode switching on or off (grey, brighter, grainier, leaves turned
white). That sample is set aside, and what it changed is not learnt as usual; a person, or a car
close by, changes the brightness of a few parts only. After a switch of mode, the usual densities
are those learnt in that mode, as soon as there are enough of them.

Each sample's verdict says why a change did not count, when one was set aside: ``lighting``,
``camera_switch``, ``usual`` (neighbourhoods that always change: foliage, water) or ``transient``
(no object that is still there a moment later: snow, rain). ``analysis`` keeps them as the timeline.

Regions (``regions.View``): every step above sees only the pixels inside the caller's regions and
outside their exclusions, cropped to the regions' bounding box, as if the rest of the picture did
not exist: brightness matching, the noise level, the usual densities and the objects. Areas (hit
thresholds, object sizes, the score) stay fractions of the *whole* picture: a person is as large
whatever region they walk in, and a small region does not make noise in it count more.

What remains is scored as the fraction of the picture that moved; a sample is a hit when the
moving pixels in its busiest neighbourhood (CELL x 3 pixels square) are enough to be an object, so
that leftover specks scattered over the whole picture never add up to one.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import cc3d
import numpy as np

from .regions import View
from .objects import LARGE_AREA, MIN_AREA_OF_THRESHOLD, Blob, around, find_blobs, follow, square_counts, top_speed

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
# Wind comes in gusts: where a patch of at least MIN_WINDY_CELLS touching neighbourhoods usually
# changes (a tree), their median density over usual says how much windier it is there now than
# usually, and the bar rises with it there.
MIN_WINDY_CELLS = 8
GUST_REACH = 2
# Moving pixels needed in one neighbourhood for a hit, as a fraction of the analysis frame, at
# sensitivity 0 and 1 (log-interpolated between). At 0.5 that is 0.05 % of the picture (65 pixels
# at 480x270): a person 5 % of the picture high; half that on a steady track (TRACKED_SHARE).
AREA_AT_SENSITIVITY_0 = 0.0035
AREA_AT_SENSITIVITY_1 = 0.00008
# Where objects are followed, only what is around a real object is left to count, and a steady
# track is itself evidence: there a hit needs this share of the area.
TRACKED_SHARE = 0.5
# Brightness that changed unevenly, by more than LIGHT_STEP beyond the picture's own change, in over
# GLOBAL_SHARE of the picture's LIGHT_BLOCK-pixel squares and in at least GLOBAL_REGIONS of its 3x3
# regions, is the camera's or the light's doing, not the scene's: a person close to the lens changes
# a few regions, not nearly all of them. LIGHT_FLOOR gray levels are added to each square's mean, so
# that sensor noise in the dark ones is no step.
LIGHT_BLOCK = 16
LIGHT_STEP = 0.04
LIGHT_FLOOR = 16
# When the light stepped, what changed beyond its change is still judged: its change at each square
# is the median of the squares' up to this many squares away.
RELIGHT_REACH = 2
RELIGHT_QUANTILE = 20
# A change of the picture's mean brightness by more than this (|log| of the ratio; flicker moves it
# 4 %) is a step of the light itself, uneven or not.
TONE_SHIFT = 0.06
GLOBAL_SHARE = 0.5
GLOBAL_REGIONS = 7
# The camera switched mode (the infrared night mode, and back) when one sample is less than
# COLOUR_RATIO times as colourful as the other and the more colourful one is at least MIN_COLOUR
# (frames.colourfulness: a street by day measures 6-8, an infrared picture under 1).
COLOUR_RATIO = 0.4
MIN_COLOUR = 2.0
# Why a sample's change did not count (Motion.reason).
LIGHTING, CAMERA_SWITCH, USUAL, TRANSIENT = "lighting", "camera_switch", "usual", "transient"


@dataclass(frozen=True)
class Motion:
    """The motion measured at one sample: ``score`` is the fraction of the picture that moved."""

    time: float
    score: float
    hit: bool
    sample: object  # the frames.Sample, kept so an event can make its tile from its peak
    # Why a change here did not count, when it would have: LIGHTING or CAMERA_SWITCH (set aside;
    # LIGHTING on a hit: what changed beyond the light's own change counted), USUAL (only where
    # things always move), TRANSIENT (nothing there a moment later); else None.
    reason: str | None = None
    # What moved, for a hit: (x, y, w, h) fractions of the upright picture around its real objects.
    box: tuple[float, float, float, float] | None = None


def area_threshold(sensitivity: float) -> float:
    """The moving-area fraction that makes a hit at this sensitivity (0..1)."""
    low, high = math.log(AREA_AT_SENSITIVITY_0), math.log(AREA_AT_SENSITIVITY_1)
    return math.exp(low + (high - low) * sensitivity)


class UsualChange:
    """How densely each neighbourhood usually changes: the ``USUAL_QUANTILE`` percentile of its last
    ``HISTORY`` densities, spread to its neighbours; nothing until there are ``MIN_HISTORY``.

    Kept apart for the camera's colour and grey (infrared) modes: leaves turn white in infrared and
    change far more densely there, so a switch starts (or returns to) that mode's own history,
    and ``switches`` remembers when, for re-scoring a stretch of the same clip later (``at``)."""

    def __init__(self):
        self._histories: dict[bool, deque[np.ndarray]] = {False: deque(maxlen=HISTORY), True: deque(maxlen=HISTORY)}
        self.grey = False
        self._history = self._histories[False]
        self._bar: np.ndarray | None = None  # the density to beat, from the usual densities
        self.switches: list[tuple[float, bool]] = []  # (time, grey) of each camera switch, in order

    def add(self, density: np.ndarray) -> None:
        if self._history and self._history[0].shape != density.shape:
            self._history.clear()
        self._history.append(density)
        self._bar = None

    def use(self, grey: bool) -> None:
        """Score against the densities of the camera's grey (infrared) or colour mode."""
        if grey != self.grey:
            self.grey, self._history, self._bar = grey, self._histories[grey], None

    def switch(self, time: float, grey: bool) -> None:
        self.switches.append((time, grey))
        self.use(grey)

    def at(self, time: float) -> None:
        """Use the mode the camera was in at ``time`` (by the switches seen when learning)."""
        grey = False
        for when, mode in self.switches:
            if when <= time + 1e-6:
                grey = mode
        self.use(grey)

    @property
    def learnt(self) -> bool:
        return len(self._history) >= HISTORY - 1

    def moving_cells(self, density: np.ndarray) -> np.ndarray:
        """Neighbourhoods changing much more densely than usual (nothing is usual yet for a picture
        size the history has not seen: a stream may change size mid-way)."""
        if self._bar is not None and self._bar.shape != density.shape:
            self._bar = None
        if self._bar is None:
            history = list(self._history)
            if len(history) < MIN_HISTORY:  # a mode just switched to: both modes', until this one's is known
                history += self._histories[not self.grey]
            enough = len(history) >= MIN_HISTORY and history[-1].shape == density.shape
            self._usual = _spread(np.percentile(np.stack(history), USUAL_QUANTILE, axis=0)) if enough \
                else np.zeros_like(density)
            self._bar = np.maximum(MIN_DENSITY, np.minimum(DENSITY_FACTOR * self._usual, self._usual + DENSITY_MARGIN))
            self._windy = _groups(self._usual > MIN_DENSITY)
        bar = self._bar
        for cells in self._windy:
            # A gust: the neighbourhoods of a tree (of each patch of neighbourhoods that usually
            # change) all change more at once, by the median of their ratios to usual; that much
            # more is usual there for now. Someone walking past raises the few they cover, not the median.
            # A gust also bends the crown into the neighbourhoods around it, where the usual is nothing:
            # there the tree's median usual is what its leaves do.
            usual = self._usual[cells]
            windy = usual > MIN_DENSITY
            wind = float(np.median(density[cells][windy] / usual[windy]))
            if wind > 1.0:
                if bar is self._bar:
                    bar = bar.copy()
                gusty = np.maximum(usual, np.median(usual[windy])) * wind
                bar[cells] = np.maximum(bar[cells], np.minimum(DENSITY_FACTOR * gusty, gusty + DENSITY_MARGIN))
        return density > bar


def _groups(cells: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The indices of each patch of at least MIN_WINDY_CELLS touching ``cells``, with the
    GUST_REACH cells around it."""
    if not cells.any():
        return []
    reach = cells
    for _ in range(GUST_REACH):
        reach = _dilate(reach)
    labels = cc3d.connected_components(reach.view(np.uint8), connectivity=8)
    groups = []
    for label in range(1, int(labels.max()) + 1):
        patch = labels == label
        if np.count_nonzero(patch & cells) >= MIN_WINDY_CELLS:
            groups.append(np.nonzero(patch))
    return groups


def detect(samples: Iterable, sensitivity: float, usual: UsualChange | None = None,
           learning: bool = True, picture_width: int = 1280, regions=None, exclude=None) -> Iterator[Motion]:
    """The motion at each sample, in order.

    The first ``HISTORY`` samples are held back until the usual densities have been learnt from
    them; meanwhile their pictures wait shrunk to ``picture_width`` (the tile width), not as full
    frames. Each sample's verdict then waits for the three after it, which say whether what
    changed was an object (see ``objects``). Pass the ``usual`` of an earlier pass over the same
    clip, with ``learning=False``, to re-score a short stretch of it (an event's edge): too short
    to learn from or to follow objects in, so every change counts there, snow included; in snow,
    an edge found that way may lie up to the stretch's end from the truth. Not learning, each
    verdict comes as soon as its sample is in, one per sample (the screening check relies on it). ``regions`` and
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
    reason: str | None = None  # LIGHTING or CAMERA_SWITCH: set aside, ``moving`` is empty
    raw: float = 0.0  # moving pixels in the busiest neighbourhood before the usual densities
    seen: float = 0.0  # the fraction of the picture that changed before anything was set aside
    unfollowed: np.ndarray | None = None  # ``moving`` before only what is around objects was kept
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
    """Each sample's changes. When learning, the first ``HISTORY`` samples are held back until the
    usual densities are learnt from them, and so are those after a switch into a camera mode whose
    usual densities are not learnt yet (each then scored against its own mode's)."""
    held: list[tuple] = []  # (sample, changed pixels, densities, (reason, stepped), grey, view)
    hold = HISTORY if learning else 0  # samples still to hold back
    previous = previous_colour = previous_view = None
    for sample in samples:
        view = views(sample)  # before ``shrink``, which turns the picture (not the gray copy) upright
        frame = _blur(view.crop(sample.gray).astype(np.float32))
        colour = getattr(sample, "colour", None)
        changed = density = reason = stepped = None
        if not learning:
            usual.at(sample.time)
        if previous is not None and previous_view is view:
            changed, reason, stepped = compare(previous, frame, (previous_colour, colour), view)
            if reason == CAMERA_SWITCH and learning:
                usual.switch(sample.time, grey=colour < previous_colour)
                if not usual.learnt:
                    hold = HISTORY
            if reason is None:
                density = _density(square_counts(changed, CELL))
                if learning:
                    usual.add(density)
        previous, previous_colour, previous_view = frame, colour, view
        if hold > 0:
            sample.shrink(picture_width)
            held.append((sample, changed, density, (reason, stepped), usual.grey, view))
            hold -= 1
            continue
        yield from _release(held, usual)
        yield _change(sample, changed, density, (reason, stepped), view, usual)
    yield from _release(held, usual)


def _release(held: list[tuple], usual: UsualChange) -> Iterator[_Change]:
    """The samples held back, each scored against its camera mode's usual densities."""
    grey = usual.grey
    for sample, changed, density, aside, mode, view in held:
        usual.use(mode)
        yield _change(sample, changed, density, aside, view, usual)
    usual.use(grey)
    held.clear()


def _change(sample, changed: np.ndarray | None, density: np.ndarray | None, aside: tuple, view: View,
            usual: UsualChange) -> _Change:
    if changed is None:
        return _Change(sample, None, view=view)
    reason, stepped = aside
    if reason == LIGHTING:  # what changed beyond the light's own change is judged as usual
        cells = usual.moving_cells(_density(square_counts(changed, CELL)))
        pixels = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)[:changed.shape[0], :changed.shape[1]]
        return _Change(sample, changed & pixels, reason=reason, seen=stepped, view=view)
    if reason is not None:  # what it saw: the share of the picture whose brightness stepped
        return _Change(sample, np.zeros_like(changed), reason=reason, seen=stepped, view=view)
    seen = float(np.count_nonzero(changed)) / view.pixels
    cells = usual.moving_cells(density)
    pixels = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)[:changed.shape[0], :changed.shape[1]]
    return _Change(sample, changed & pixels, raw=float(density.max()) * 9 * CELL * CELL, seen=seen, view=view)


def compare(a: np.ndarray, b: np.ndarray, colours: tuple = (None, None),
            view: View | None = None) -> tuple[np.ndarray, str | None, float]:
    """The pixels that changed between two blurred gray frames (whose pictures' ``colours`` are
    ``frames.colourfulness``; ``view``: the caller's regions, which the frames are cropped to); why
    they are set aside, if they are (LIGHTING or CAMERA_SWITCH); and then the share of the picture
    whose brightness stepped."""
    inside, robust = (view.inside, view.cropped) if view is not None else (None, False)
    gain = _gain(a, b, inside, robust)
    changed = changed_pixels(a, b, gain, inside)
    stepped = _global(a, b)
    if stepped:
        if _switched(*colours):
            return changed, CAMERA_SWITCH, stepped
        return _relit(a, b, inside), LIGHTING, stepped
    return changed, None, 0.0


def _relit(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """The pixels that changed beyond what the light did, when it stepped: the light's change at a
    pixel is anything between the low and the high RELIGHT_QUANTILE of the changes of the
    LIGHT_BLOCK-pixel squares around it (RELIGHT_REACH squares either way), taken smoothly between
    their centres. Light reaches a square and its neighbours alike (both sides of a shadow's edge
    are within that range); a person walking in changes the few squares they cover, unlike the
    light, and so still stands out."""
    side = LIGHT_BLOCK
    floor = LIGHT_FLOOR * side * side
    ratio = np.log((square_counts(a, side) + floor) / (square_counts(b, side) + floor))
    r = RELIGHT_REACH
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(ratio, r, mode="edge"), (2 * r + 1, 2 * r + 1))
    low, middle, high = np.percentile(windows.reshape(*ratio.shape, -1),
                                      (RELIGHT_QUANTILE, 50, 100 - RELIGHT_QUANTILE), axis=-1)
    low, middle, high = (np.exp(_smooth(x, b.shape, side)).astype(np.float32) for x in (low, middle, high))
    noise = np.abs(a - b * middle)[::2, ::4]
    if inside is not None:
        noise = noise[inside[::2, ::4]]
    bar = max(MIN_DIFFERENCE, NOISE_FACTOR * float(np.median(noise)) / 0.6745) if noise.size else MIN_DIFFERENCE
    changed = (a - b * high > bar) | (b * low - a > bar)
    if inside is not None:
        changed &= inside
    return _open(changed)


def _smooth(squares: np.ndarray, shape: tuple[int, int], side: int) -> np.ndarray:
    """Values at the centres of ``side``-pixel squares, interpolated to each pixel of ``shape``."""
    h, w = shape
    ys = np.clip((np.arange(h) + 0.5) / side - 0.5, 0, squares.shape[0] - 1)
    xs = np.clip((np.arange(w) + 0.5) / side - 0.5, 0, squares.shape[1] - 1)
    rows = np.stack([np.interp(xs, np.arange(squares.shape[1]), row) for row in squares])
    return np.stack([np.interp(ys, np.arange(squares.shape[0]), col) for col in rows.T], axis=1)


def _switched(colour_a: float | None, colour_b: float | None) -> bool:
    """Whether one picture is grey and the other colourful: the camera changed mode."""
    if colour_a is None or colour_b is None:
        return False
    low, high = sorted((colour_a, colour_b))
    return high >= MIN_COLOUR and low < COLOUR_RATIO * high


def _global(a: np.ndarray, b: np.ndarray) -> float:
    """The share of the picture whose brightness stepped, if the light or the camera did it, else 0:
    the share of its LIGHT_BLOCK-pixel squares whose brightness changed by over LIGHT_STEP (|log| of
    the ratio of their means) more or less than the whole picture's (a uniform change is matched away
    already) and in step with most of its neighbours, when that share is over GLOBAL_SHARE and spread
    over at least GLOBAL_REGIONS of the picture's 3x3 regions. Light reaches everywhere at once, unevenly (an exposure step through
    the tone curve, sunlight on what it reaches, infrared on leaves); a person, or a car close by,
    darkens or brightens the few squares they cover."""
    side = LIGHT_BLOCK
    floor = LIGHT_FLOOR * side * side  # so that the noise of dark squares is no step
    ratio = np.log((square_counts(a, side) + floor) / (square_counts(b, side) + floor))
    # Beyond the picture's own change when that is small (flicker is no step), else all of it; the
    # picture's change is its squares' median, which a dark car filling a tenth of it does not move.
    typical = float(np.median(ratio))
    if abs(typical) <= TONE_SHIFT:
        ratio -= typical
    stepped = np.abs(ratio) > LIGHT_STEP
    # Light changes smoothly: a square steps with most of its neighbours, the same way. Flakes
    # of a blizzard brighten some squares and leave others, at random.
    stepped &= np.abs(_neighbourhoods(np.sign(ratio) * stepped)) >= 5
    share = float(stepped.mean())
    if share <= GLOBAL_SHARE:
        return 0.0
    h, w = stepped.shape
    regions = [stepped[h * i // 3:h * (i + 1) // 3, w * j // 3:w * (j + 1) // 3] for i in range(3) for j in range(3)]
    return share if sum(1 for r in regions if r.size and r.mean() > GLOBAL_SHARE / 2) >= GLOBAL_REGIONS else 0.0


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
            scored.unfollowed = scored.moving
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
    if float(_neighbourhoods(counts).max()) >= threshold * pixels:  # the light's own change set aside, if it stepped
        return Motion(sample.time, score, True, sample, change.reason, box=_box(change))
    if change.reason is not None:  # set aside: scored by what changed, for the timeline
        return Motion(sample.time, change.seen, False, sample, change.reason)
    reason = _why_not(change, threshold * pixels)
    return Motion(sample.time, change.seen if reason else score, False, sample, reason)


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


def _why_not(change: _Change, needed: float) -> str | None:
    """Why a sample that is no hit would have been one: its changes counted only where nothing was
    there a moment later (TRANSIENT), or they were only where things always change (USUAL)."""
    unfollowed = change.unfollowed
    if unfollowed is not None and unfollowed.any() \
            and float(_neighbourhoods(square_counts(unfollowed, CELL)).max()) >= needed:
        return TRANSIENT
    return USUAL if change.raw >= needed else None


def changed_pixels(a: np.ndarray, b: np.ndarray, gain: float | None = None,
                   inside: np.ndarray | None = None) -> np.ndarray:
    """Pixels that changed between two blurred gray frames, beyond noise and lighting (``inside``:
    only those pixels are looked at, and only they tell the noise level).

    Brightness is matched by the picture's gain; where that gain is more than a percent, a pixel
    must also differ as it is: what the light does not reach (a burnt-in clock, a clipped sky)
    stays as it was, and matching it would make it change."""
    gain = _gain(a, b, inside) if gain is None else gain
    difference = np.abs(a - b * gain)
    # The median of |N(0, s)| is 0.6745 s; every 4th pixel of every 2nd row estimates it as well.
    sample = difference[::2, ::4]
    if inside is not None:
        sample = sample[inside[::2, ::4]]
        if sample.size < 64:  # a thin region may miss the sparse grid: use every pixel of it
            sample = difference[inside]
        if not sample.size:
            return np.zeros(difference.shape, bool)
    noise = float(np.median(sample)) / 0.6745
    bar = max(MIN_DIFFERENCE, NOISE_FACTOR * noise)
    changed = difference > bar
    if abs(gain - 1.0) > 0.01:
        changed &= np.abs(a - b) > bar
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
