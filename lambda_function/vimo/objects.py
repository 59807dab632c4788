"""Moving pixels -> objects: what changed counts as motion only if something was there to move.

A difference between two samples says *where* the picture changed, not *what* changed it. A person
walking, a car, a hand: each is still there in the next sample, a little further on. A snowflake or
a raindrop near the lens is gone: in the half second between two samples it falls many times its
own size, and what the next sample shows at that spot, if anything, is another flake.

So each sample's objects are located where it differs from *both* its neighbours (the pixels that
changed before and after it; a thing present only in this sample, like a flake, is also found here),
and objects are real when they make a steady track through three samples in a row: each of similar
size to the one before, no faster than things with legs or wheels move for their size (or than
a walker far off crosses the view: a few pixels tall, they move many of their sizes), and in much
the same direction and speed. By chance, among many flakes, one may have a look-alike near it in
the next sample; hardly ever one in the next sample as well, on the same line. Objects large enough
to be nothing but real (a good share of the picture) need no track: a car crossing the view in a
second may be in one sample only. ``motion`` then counts as moving only the changed pixels around
real objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import cc3d  # connected-components-3d: 17 MB in the Lambda package, where OpenCV would not fit
import numpy as np

# Objects smaller than this fraction of the hit threshold are ignored (leftover noise, flakes far
# off): 6 pixels of the 480x270 analysis frame at the default sensitivity, what is left of a person
# 3 % of the picture high where their clothes match the background.
MIN_AREA_OF_THRESHOLD = 0.1
# An object of at least this fraction of the picture is real without a track (390 pixels of the
# 480x270 analysis frame: six times a hit at the default sensitivity, a person about 15 % of the
# picture high; two near flakes close together reach half that).
LARGE_AREA = 0.003
# ... and fills at least this share of its box: a person or a car is solid; leaves in a gust change
# in scattered patches, grouped into one sparse box.
LARGE_FILL = 0.25
# Counterparts: their boxes overlap, or their centres are at most SPEED times the larger one's size
# apart for each second between their samples; and neither more than SIZE_RATIO times the other's
# area. People walk about their height in a second and run two or three; a car covers its length in
# a third of a second in town, but a car is large (see LARGE_AREA); a snowflake near the lens falls
# many times its own size. That is at the default sensitivity (0.5); every 0.2 more doubles it.
SPEED = 3.2
# Whatever its size, an object may move CRAWL times the picture's width a second: a distant walker
# is a few pixels, moving many of its own sizes a second; precipitation near the lens crosses the
# whole view in a second or two.
CRAWL = 0.08
SIZE_RATIO = 4.0
# A track is steady when its third object is within WOBBLE times its size of where the first two put it.
WOBBLE = 0.5
# Patches of change this close (pixels of the analysis frame) may be parts of one object.
GROUP = 8
# A sample with more objects than this is confetti or a blizzard: only the largest are followed,
# so that following them costs milliseconds, not seconds.
MAX_OBJECTS = 64


@dataclass(frozen=True)
class Blob:
    """A connected patch of pixels that changed on both sides of a sample: its box and its area."""

    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def size(self) -> float:
        """Its box's longer side, but for a sparse box (patches of several things grouped) no more
        than twice the side of a square of its area."""
        return min(max(self.w, self.h), 2 * math.sqrt(self.area))

    def continues(self, other: "Blob", seconds: float, speed: float, crawl: float) -> bool:
        """Whether ``other``, ``seconds`` later, can be this same object: of a similar area, and
        overlapping it or no further from it than its size allows."""
        (ax, ay), (bx, by) = self.centre, other.centre
        near = (self.gap(other) == 0
                or math.hypot(bx - ax, by - ay) <= seconds * max(speed * max(self.size, other.size), crawl))
        return near and max(self.area, other.area) <= SIZE_RATIO * min(self.area, other.area)

    def gap(self, other: "Blob") -> int:
        """Pixels between the two boxes (0 if they touch or overlap)."""
        dx = max(self.x, other.x) - min(self.x + self.w, other.x + other.w)
        dy = max(self.y, other.y) - min(self.y + self.h, other.y + other.h)
        return max(0, dx, dy)


def square_counts(pixels: np.ndarray, side: int) -> np.ndarray:
    """Pixels set in each ``side`` x ``side`` square of a mask (squares at the edges may be partly
    outside it)."""
    h, w = pixels.shape
    rows, cols = -(-h // side), -(-w // side)
    padded = np.zeros((rows * side, cols * side), np.float32)
    padded[:h, :w] = pixels
    return padded.reshape(rows, side, cols, side).sum(axis=(1, 3))


def find_blobs(pixels: np.ndarray, min_area: float) -> list[Blob]:
    """The objects among a sample's changed ``pixels`` of at least ``min_area`` pixels, the
    ``MAX_OBJECTS`` largest.

    A person whose clothes look like the wall behind changes in patches, not as one silhouette:
    patches in touching ``GROUP`` x ``GROUP`` squares are one object, so that its size, which
    says how far it may move, is the person's and not a patch's."""
    if not pixels.any():
        return []
    h, w = pixels.shape
    groups = cc3d.connected_components((square_counts(pixels, GROUP) > 0).view(np.uint8), connectivity=8)
    labels = np.repeat(np.repeat(groups, GROUP, axis=0), GROUP, axis=1)[:h, :w] * pixels
    stats = cc3d.statistics(labels)
    blobs = [Blob(x.start, y.start, x.stop - x.start, y.stop - y.start, int(area))
             for area, (y, x) in zip(stats["voxel_counts"][1:], stats["bounding_boxes"][1:]) if area >= min_area]
    return sorted(blobs, key=lambda b: b.area, reverse=True)[:MAX_OBJECTS]


def top_speed(sensitivity: float) -> float:
    """The fastest an object may move, in its own sizes a second, at this sensitivity (0..1)."""
    return SPEED * 2 ** ((sensitivity - 0.5) / 0.2)


def follow(before: Sequence[Blob], now: Sequence[Blob], after: Sequence[Blob], shape: tuple[int, int],
           times: tuple[float, float, float], speed: float) -> Iterator[Blob]:
    """The real objects among three samples' in a row, taken at ``times``: the large ones of
    ``now``, and every object of a steady track through all three (one in each, each continuing
    the one before at no more than ``speed``, and at much the same velocity: things with mass do
    not zigzag in a second, while flakes that happen to line up do)."""
    first, second = times[1] - times[0], times[2] - times[1]
    crawl = CRAWL * shape[1]
    for b in now:
        if b.area >= LARGE_AREA * shape[0] * shape[1] and b.area >= LARGE_FILL * b.w * b.h:
            yield b
        sources = [a for a in before if a.continues(b, first, speed, crawl)]
        targets = [c for c in after if b.continues(c, second, speed, crawl)] if sources else []
        for a in sources:
            for c in targets:
                if _steady(a, b, c, first, second):
                    yield from (a, b, c)


def _steady(a: Blob, b: Blob, c: Blob, first: float, second: float) -> bool:
    """Whether a, b, c, ``first`` and ``second`` seconds apart, move at about the same velocity:
    the third no further than ``WOBBLE`` times the object's size from where the first two say."""
    (ax, ay), (bx, by), (cx, cy) = a.centre, b.centre, c.centre
    scale = second / first if first > 0 else 0.0
    off = math.hypot(cx - (bx + (bx - ax) * scale), cy - (by + (by - ay) * scale))
    return off <= WOBBLE * max(a.size, b.size, c.size)


def around(blobs: Sequence[Blob], shape: tuple[int, int]) -> np.ndarray:
    """A mask of the boxes of ``blobs``, each grown by half its size: where their motion is."""
    mask = np.zeros(shape, bool)
    for b in blobs:
        m = max(b.w, b.h) // 2 + 1
        mask[max(0, b.y - m):b.y + b.h + m, max(0, b.x - m):b.x + b.w + m] = True
    return mask
