"""Where to look: the caller's regions and exclusions as a mask of the analysis frame, and boxes back.

Callers give polygons as fractions of the *upright* picture (what a player shows), so that one
region serves every resolution and a phone clip stored sideways. The gray copies that motion is
measured on are in the *stored* orientation (turning every one upright would cost a copy per
sample), so the polygons are mapped to stored coordinates once per picture size and rasterised with
Pillow; boxes found in stored coordinates are mapped back to upright fractions.

``View`` is what ``motion`` works on: the mask cropped to its bounding box, and where that crop lies
in the full analysis frame. Cropping makes the per-pixel work both correct (nothing outside the
regions takes part) and cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

Polygon = Sequence[tuple[float, float]]


def to_stored(x: float, y: float, rotation: int) -> tuple[float, float]:
    """A point of the upright picture (fractions) in the stored picture (fractions); ``rotation`` is
    the degrees counter-clockwise that turn the stored picture upright (``frames.Sample.rotation``)."""
    if rotation == 90:
        return 1.0 - y, x
    if rotation == 180:
        return 1.0 - x, 1.0 - y
    if rotation == 270:
        return y, 1.0 - x
    return x, y


def to_upright(x: float, y: float, rotation: int) -> tuple[float, float]:
    """The inverse of ``to_stored``."""
    if rotation == 90:
        return y, 1.0 - x
    if rotation == 180:
        return 1.0 - x, 1.0 - y
    if rotation == 270:
        return 1.0 - y, x
    return x, y


def mask(shape: tuple[int, int], rotation: int, regions: Sequence[Polygon] | None,
         exclude: Sequence[Polygon] | None) -> np.ndarray | None:
    """Pixels of a stored frame of ``shape`` (rows, columns) that are looked at: inside a region (or
    anywhere, without regions) and outside every exclusion; None when there is nothing to leave out."""
    if not regions and not exclude:
        return None
    h, w = shape
    image = Image.new("L", (w, h), 0 if regions else 255)
    draw = ImageDraw.Draw(image)
    for polygons, fill in ((regions or (), 255), (exclude or (), 0)):
        for polygon in polygons:
            # Pillow fills edges inclusively, so a region is at most a pixel larger than drawn; a thin
            # one still gets its outline's pixels.
            points = [to_stored(x, y, rotation) for x, y in polygon]
            draw.polygon([(px * w, py * h) for px, py in points], fill=fill, outline=fill)
    return np.asarray(image) > 0


@dataclass(frozen=True, eq=False)
class View:
    """The part of an analysis frame that motion is measured in: rows ``y0:y1`` and columns
    ``x0:x1`` of a frame of ``shape``, and ``inside`` (None: all of it; else a mask of the crop)."""

    shape: tuple[int, int]
    rotation: int = 0
    y0: int = 0
    y1: int = 0
    x0: int = 0
    x1: int = 0
    inside: np.ndarray | None = None

    @classmethod
    def of(cls, shape: tuple[int, int], rotation: int, regions=None, exclude=None) -> "View":
        full = mask(shape, rotation, regions, exclude)
        if full is None:
            return cls(shape, rotation, 0, shape[0], 0, shape[1])
        rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
        if not len(rows):  # everything excluded: a one-pixel crop that never changes
            return cls(shape, rotation, 0, 1, 0, 1, np.zeros((1, 1), bool))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        inside = full[y0:y1, x0:x1]
        return cls(shape, rotation, int(y0), int(y1), int(x0), int(x1), None if inside.all() else inside)

    @property
    def cropped(self) -> bool:
        """Whether regions or exclusions leave part of the picture out."""
        return self.inside is not None or (self.y1 - self.y0, self.x1 - self.x0) != self.shape

    @property
    def pixels(self) -> int:
        """Pixels of the whole analysis frame: hit thresholds stay fractions of the picture, so a
        small region is not made more sensitive to noise than the whole picture would be."""
        return self.shape[0] * self.shape[1]

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y0:self.y1, self.x0:self.x1]

    def box(self, x: int, y: int, w: int, h: int) -> tuple[float, float, float, float]:
        """A box of the crop (pixels) as ``(x, y, w, h)`` fractions of the upright picture."""
        rows, cols = self.shape
        corners = [to_upright((self.x0 + cx) / cols, (self.y0 + cy) / rows, self.rotation)
                   for cx, cy in ((x, y), (x + w, y + h))]
        (ax, ay), (bx, by) = corners
        left, top = min(ax, bx), min(ay, by)
        return (round(left, 4), round(top, 4), round(abs(bx - ax), 4), round(abs(by - ay), 4))
