"""Moving pixels -> objects: what changed counts as motion only if something was there to move.

A difference between two samples says *where* the picture changed, not *what* changed it. A person
walking, a car, a hand: each is still there in the next sample, a little further on. A snowflake or
a raindrop near the lens is gone: in the half second between two samples it falls dozens of times
its own size, and what the next sample shows at that spot, if anything, is another flake.

So each sample's objects are located where it differs from *both* its neighbours (the pixels that
changed before and after it; a thing present only in this sample, like a flake, is also found here),
and objects are real when they make a track through three samples in a row: each of similar size
to the one before and no further from it than its own size. By chance, among many flakes, one
may have a look-alike near it in the next sample; hardly ever in the next two as well. Objects
large enough to be nothing but real (a good share of the picture) need no track: a car crossing
the view in a second may be in one sample only.
``motion`` then counts as moving only the changed pixels around real objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import cc3d  # connected-components-3d: 17 MB in the Lambda package, where OpenCV would not fit
import numpy as np

# Objects smaller than this fraction of the hit threshold are ignored (leftover noise, flakes far off).
MIN_AREA_OF_THRESHOLD = 0.25
# An object of at least this fraction of the picture is real without a counterpart (130 pixels of
# the 480x270 analysis frame: twice a hit at the default sensitivity; a near flake is half that).
LARGE_AREA = 0.001
# Counterparts: at most ``REACH`` times the larger one's size apart (gap between their boxes), and
# neither more than ``SIZE_RATIO`` times the other's area. A walker moves well under their own
# height in half a second; a flake, tens of its own sizes.
REACH = 1.0
SIZE_RATIO = 4.0


@dataclass(frozen=True)
class Blob:
    """A connected patch of pixels that changed on both sides of a sample: its box and its area."""

    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def size(self) -> int:
        return max(self.w, self.h)

    def gap(self, other: "Blob") -> int:
        """Pixels between the two boxes (0 if they touch or overlap)."""
        dx = max(self.x, other.x) - min(self.x + self.w, other.x + other.w)
        dy = max(self.y, other.y) - min(self.y + self.h, other.y + other.h)
        return max(0, dx, dy)

    def continues(self, other: "Blob") -> bool:
        return (self.gap(other) <= REACH * max(self.size, other.size)
                and max(self.area, other.area) <= SIZE_RATIO * min(self.area, other.area))


def find_blobs(before: np.ndarray | None, after: np.ndarray | None, min_area: float) -> list[Blob]:
    """The objects at a sample, from its changed pixels ``before`` (since the previous sample) and
    ``after`` (until the next); none if either is missing."""
    if before is None or after is None or before.shape != after.shape:
        return []
    both = before & after
    if not both.any():
        return []
    labels = cc3d.connected_components(both.view(np.uint8), connectivity=8)
    stats = cc3d.statistics(labels)
    return [Blob(x.start, y.start, x.stop - x.start, y.stop - y.start, int(area))
            for area, (y, x) in zip(stats["voxel_counts"][1:], stats["bounding_boxes"][1:]) if area >= min_area]


def follow(before: Sequence[Blob], now: Sequence[Blob], after: Sequence[Blob], pixels: int) -> Iterator[Blob]:
    """The real objects among three samples' in a row: the large ones of ``now``, and every object
    of a track through all three (one in each, each continuing the one before)."""
    for b in now:
        if b.area >= LARGE_AREA * pixels:
            yield b
        for a in before:
            if a.continues(b):
                for c in after:
                    if b.continues(c):
                        yield from (a, b, c)


def around(blobs: Sequence[Blob], shape: tuple[int, int]) -> np.ndarray:
    """A mask of the boxes of ``blobs``, each grown by half its size: where their motion is."""
    mask = np.zeros(shape, bool)
    for b in blobs:
        m = b.size // 2 + 1
        mask[max(0, b.y - m):b.y + b.h + m, max(0, b.x - m):b.x + b.w + m] = True
    return mask
