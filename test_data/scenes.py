"""Synthetic surveillance scenes with known motion, rendered with numpy and encoded with PyAV.

Why synthetic: a motion detector must be judged against ground truth, and real footage has none
(someone has to label it, and the labels disagree). A scene here is a small frozen description
(``Scene``) from which every frame, at any time, is computed deterministically; the same
description also yields the exact spans in which something really moved (``Scene.truth``).

Why "realistic": a flat grey background with a black square moving over it is detected by any
frame difference; what breaks detectors is what real cameras deliver. So scenes have

* a textured static background (sky gradient, buildings with windows, paving, asphalt grain, or
  a room), because texture is what compression shimmers on and what a swaying branch reveals;
* Gaussian sensor noise, heavy and on a dark, low-contrast, desaturated picture at night;
* moving objects of several sizes and speeds: upright textured people with a walk cycle and
  car-like boxes, down to a person ~3 % of the picture's height;
* nuisances that change pixels while nothing moves: slow lighting drift (not perfectly uniform,
  like a cloud passing), a few % flicker at several Hz, foliage swaying for the whole clip, rain
  streaks and drifting snow;
* H.264 (or another codec) at a camera-like bitrate, variable frame rate via per-frame
  timestamps, and rotation metadata for phone clips.

Ground truth convention: an object is moving from the moment any part of it is visible and moving
until it leaves the picture or stops. ``Scene.truth()`` returns the union of those spans over all
objects, as ``[(start, end), ...]`` in seconds.

Everything is a pure function of the scene and the time (random generators are seeded from the
scene's seed and the frame's time), so a frame renders identically in a clip, a VFR clip or a
still, and re-running a generator reproduces its files byte for byte (modulo encoder versions).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw

# Bump when a change alters rendered pixels or encoded bytes: caches of rendered clips (bench/quality.py)
# are keyed on it, so edits that change nothing (docs, refactors) do not force hours of re-rendering.
RENDER_VERSION = 1

# --------------------------------------------------------------------------------------------------
# Procedural textures
# --------------------------------------------------------------------------------------------------


def value_noise(h: int, w: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in [-1, 1] whose features are about ``cell`` pixels across.

    Bicubic upsampling of a coarse random grid: cheap, and enough to look like plaster, asphalt
    grain or foliage at the scales used here.
    """
    gh, gw = max(2, math.ceil(h / cell) + 2), max(2, math.ceil(w / cell) + 2)
    coarse = (rng.random((gh, gw), dtype=np.float32) * 2 - 1).astype(np.float32)
    if cell <= 1:
        return coarse[:h, :w]
    up = Image.fromarray(coarse, "F").resize((round(gw * cell), round(gh * cell)), Image.Resampling.BICUBIC)
    return np.asarray(up, np.float32)[:h, :w]


def fractal_noise(h: int, w: int, rng: np.random.Generator, cells: Sequence[float] = (48, 12, 3, 1),
                  gain: float = 0.55) -> np.ndarray:
    """Sum of ``value_noise`` octaves (coarse to fine), roughly in [-1, 1]: natural-looking texture."""
    total = np.zeros((h, w), np.float32)
    amplitude, norm = 1.0, 0.0
    for cell in cells:
        total += amplitude * value_noise(h, w, cell, rng)
        norm += amplitude
        amplitude *= gain
    return total / norm


def _textured(h: int, w: int, colour: Sequence[float], rng: np.random.Generator, strength: float = 0.18,
              cells: Sequence[float] = (24, 6, 2, 1)) -> np.ndarray:
    """An (h, w, 3) patch of ``colour`` modulated by fine fractal texture (multiplicative, like albedo)."""
    t = 1.0 + strength * fractal_noise(h, w, rng, cells)
    return np.asarray(colour, np.float32)[None, None, :] * t[..., None]


def street_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A street as a fixed camera sees it: sky, a row of buildings with windows, pavement, road.

    Returns float32 (h, w, 3) in display units 0..255. Every surface carries fine texture, since
    a flat colour would hide both compression shimmer and foliage motion from a detector.
    """
    img = np.zeros((h, w, 3), np.float32)
    horizon = int(0.42 * h)
    kerb = int(0.60 * h)

    # Sky: vertical gradient plus soft clouds.
    y = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    top, bottom = np.array([88, 138, 196], np.float32), np.array([196, 212, 226], np.float32)
    sky = top * (1 - y) + bottom * y
    clouds = np.clip(value_noise(horizon, w, max(8, w / 6), rng), 0, 1)[..., None]
    img[:horizon] = sky * (1 - 0.5 * clouds) + 235 * 0.5 * clouds

    # Buildings: blocks of random height and colour, each with plaster texture and a window grid.
    x = 0
    while x < w:
        bw = int(rng.uniform(0.10, 0.24) * w)
        top_y = int(horizon - rng.uniform(0.08, 0.32) * h)
        top_y = max(2, top_y)
        colour = rng.choice([[150, 120, 100], [185, 175, 160], [120, 110, 115], [170, 150, 120], [200, 190, 175]])
        colour = np.asarray(colour, np.float32) * rng.uniform(0.85, 1.1)
        bh, bx1 = kerb - top_y, min(w, x + bw)
        block = _textured(bh, bx1 - x, colour, rng, 0.12)
        win_w, win_h = max(2, int(0.02 * w)), max(2, int(0.035 * h))
        pitch_x, pitch_y = win_w * 2 + 1, win_h * 2
        for wy in range(pitch_y // 2, bh - int(0.1 * h), pitch_y):
            for wx in range(pitch_x // 2, bx1 - x - win_w, pitch_x):
                lit = rng.random() < 0.25
                shade = rng.uniform(150, 200) if lit else rng.uniform(35, 70)
                block[wy:wy + win_h, wx:wx + win_w] = [shade, shade * 0.95, shade * (0.75 if lit else 1.05)]
        img[top_y:kerb, x:bx1] = block
        img[top_y:top_y + max(1, h // 200), x:bx1] *= 0.6  # roof edge
        x = bx1

    # Pavement: light paving slabs with joints.
    pave = _textured(kerb - horizon + int(0.04 * h), w, [165, 160, 150], rng, 0.10)
    pave_top = kerb - int(0.04 * h)
    slab = max(4, w // 40)
    pave[:, ::slab] *= 0.82
    img[pave_top:kerb + int(0.04 * h)] = pave[: kerb + int(0.04 * h) - pave_top]
    road_top = kerb + int(0.04 * h)

    # Road: asphalt grain, slightly darker far away, and dashed lane markings.
    rh = h - road_top
    road = _textured(rh, w, [92, 92, 96], rng, 0.16, cells=(32, 4, 1.5, 1))
    road *= np.linspace(0.9, 1.05, rh, dtype=np.float32)[:, None, None]
    lane_y = road_top + int(0.55 * rh)
    dash, mark_h = max(6, w // 16), max(1, h // 120)
    for lx in range(0, w, dash * 2):
        road[lane_y - road_top:lane_y - road_top + mark_h, lx:lx + dash] = 215
    img[road_top:] = road
    img[kerb + int(0.04 * h) - max(1, h // 150):road_top] = 120  # kerb stone
    return np.clip(img, 0, 255)


def room_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A dim room: plastered wall, a door, a picture, a shelf, and a wooden floor."""
    img = np.zeros((h, w, 3), np.float32)
    floor_y = int(0.68 * h)
    img[:floor_y] = _textured(floor_y, w, [178, 165, 140], rng, 0.08)
    # A soft vignette of the ceiling lamp: brighter in the middle of the wall.
    yy, xx = np.mgrid[0:floor_y, 0:w].astype(np.float32)
    img[:floor_y] *= (1.05 - 0.35 * (((xx - w / 2) / w) ** 2 + ((yy - 0.1 * h) / h) ** 2))[..., None]
    # Wooden floor: planks with grain stretched along them.
    fh = h - floor_y
    grain = value_noise(fh, w, 1, rng) * 0.5 + value_noise(fh, w // 8 + 1, 2, rng).repeat(8, axis=1)[:, :w] * 0.5
    floor = np.array([120, 84, 52], np.float32) * (1 + 0.18 * grain)[..., None]
    plank = max(3, h // 30)
    floor[::plank] *= 0.6
    img[floor_y:] = floor
    # Door, picture frame, shelf with books.
    dx0, dx1, dy0 = int(0.62 * w), int(0.78 * w), int(0.18 * h)
    img[dy0:floor_y, dx0:dx1] = _textured(floor_y - dy0, dx1 - dx0, [110, 80, 55], rng, 0.15)
    img[dy0:floor_y, dx0:dx0 + max(1, w // 160)] = 60
    knob_y, knob_x = int(0.45 * h), dx1 - int(0.02 * w)
    img[knob_y:knob_y + max(2, h // 90), knob_x:knob_x + max(2, w // 160)] = 200
    px0, py0 = int(0.15 * w), int(0.15 * h)
    img[py0:py0 + int(0.2 * h), px0:px0 + int(0.18 * w)] = _textured(int(0.2 * h), int(0.18 * w), [60, 90, 120], rng, 0.4)
    sy = int(0.5 * h)
    img[sy:sy + max(2, h // 60), int(0.05 * w):int(0.45 * w)] = 90
    bx = int(0.06 * w)
    while bx < int(0.43 * w):
        bw = max(2, int(rng.uniform(0.008, 0.02) * w))
        bh = int(rng.uniform(0.06, 0.11) * h)
        img[sy - bh:sy, bx:bx + bw] = rng.uniform(40, 200, 3)
        bx += bw + 1
    return np.clip(img, 0, 255)


BACKGROUNDS = {"street": street_background, "room": room_background}

# --------------------------------------------------------------------------------------------------
# Moving objects
# --------------------------------------------------------------------------------------------------

_SUPERSAMPLE = 4  # sprites are drawn 4x larger and box-filtered: anti-aliased edges like a real lens


def _finish_sprite(layers: list[tuple[Image.Image, np.ndarray]], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Composite (mask, rgb) layers drawn at 4x and downsample: returns (rgb, alpha) float32."""
    W, H = size
    rgb = np.zeros((H, W, 3), np.float32)
    alpha = np.zeros((H, W), np.float32)
    for mask, colour in layers:
        m = np.asarray(mask, np.float32) / 255
        rgb = rgb * (1 - m[..., None]) + colour * m[..., None]
        alpha = np.maximum(alpha, m)
    s = _SUPERSAMPLE
    h, w = H // s, W // s
    premult = (rgb * alpha[..., None]).reshape(h, s, w, s, 3).mean(axis=(1, 3))
    a = alpha.reshape(h, s, w, s).mean(axis=(1, 3))
    colour = premult / np.maximum(a, 1e-6)[..., None]
    return colour.astype(np.float32), a.astype(np.float32)


def person_sprites(height_px: int, rng: np.random.Generator, poses: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """A walk cycle of an upright textured person, ``height_px`` tall: one (rgb, alpha) per pose."""
    height_px = max(6, height_px)
    s = _SUPERSAMPLE
    H = height_px * s
    W = max(2, round(0.5 * height_px)) * s
    cx = W / 2
    skin = np.array(rng.choice([[224, 180, 150], [180, 130, 95], [120, 85, 60]]), np.float32)
    top = rng.uniform(20, 220, 3).astype(np.float32)
    trousers = rng.uniform(20, 110, 3).astype(np.float32)
    texture = 1 + 0.2 * fractal_noise(H, W, rng, (16 * s / 4, 4 * s / 4, s / 2 + 1))
    sprites = []
    for k in range(poses):
        swing = math.sin(2 * math.pi * k / poses)
        layers = []
        # legs: two quads from the hip, swinging opposite ways
        legs = Image.new("L", (W, H))
        d = ImageDraw.Draw(legs)
        hip_y, leg_w = 0.52 * H, 0.09 * H
        for sign in (1, -1):
            fx = cx + sign * swing * 0.16 * H
            d.polygon([(cx - leg_w, hip_y), (cx + leg_w * 0.2, hip_y), (fx + leg_w * 0.5, H - 1), (fx - leg_w * 0.8, H - 1)], fill=255)
        layers.append((legs, trousers[None, None] * texture[..., None]))
        # arms, swinging against the legs, then the torso over them
        arms = Image.new("L", (W, H))
        d = ImageDraw.Draw(arms)
        for sign in (1, -1):
            hx = cx - sign * swing * 0.1 * H
            d.line([(cx, 0.18 * H), (hx, 0.48 * H)], fill=255, width=max(1, int(0.06 * H)))
        layers.append((arms, top[None, None] * 0.85 * texture[..., None]))
        torso = Image.new("L", (W, H))
        ImageDraw.Draw(torso).rounded_rectangle([cx - 0.13 * H, 0.14 * H, cx + 0.13 * H, 0.56 * H], radius=0.05 * H, fill=255)
        layers.append((torso, top[None, None] * texture[..., None]))
        head = Image.new("L", (W, H))
        ImageDraw.Draw(head).ellipse([cx - 0.065 * H, 0.0, cx + 0.065 * H, 0.14 * H], fill=255)
        layers.append((head, skin[None, None] * texture[..., None]))
        sprites.append(_finish_sprite(layers, (W, H)))
    return sprites


def car_sprite(height_px: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A car-like box ``height_px`` tall facing right: body, cabin with dark glass, wheels, lights."""
    height_px = max(5, height_px)
    s = _SUPERSAMPLE
    H = height_px * s
    L = round(2.4 * height_px) * s
    paint = np.array(rng.choice([[180, 30, 30], [30, 60, 150], [200, 200, 205], [40, 40, 45], [220, 220, 225]]), np.float32)
    texture = 1 + 0.06 * fractal_noise(H, L, rng, (8 * s, 2 * s, s))
    layers = []
    body = Image.new("L", (L, H))
    ImageDraw.Draw(body).rounded_rectangle([0, 0.38 * H, L - 1, 0.82 * H], radius=0.1 * H, fill=255)
    shade = np.linspace(1.15, 0.75, H, dtype=np.float32)[:, None, None]  # lit from above
    layers.append((body, paint * shade * texture[..., None]))
    cabin = Image.new("L", (L, H))
    ImageDraw.Draw(cabin).polygon([(0.22 * L, 0.4 * H), (0.32 * L, 0.02 * H), (0.66 * L, 0.02 * H), (0.8 * L, 0.4 * H)], fill=255)
    layers.append((cabin, paint * 0.95 * texture[..., None]))
    glass = Image.new("L", (L, H))
    gd = ImageDraw.Draw(glass)
    gd.polygon([(0.27 * L, 0.38 * H), (0.34 * L, 0.08 * H), (0.48 * L, 0.08 * H), (0.48 * L, 0.38 * H)], fill=255)
    gd.polygon([(0.51 * L, 0.38 * H), (0.51 * L, 0.08 * H), (0.64 * L, 0.08 * H), (0.75 * L, 0.38 * H)], fill=255)
    sky_reflection = np.linspace(120, 40, H, dtype=np.float32)[:, None, None] * np.array([0.8, 0.9, 1.1], np.float32)
    layers.append((glass, sky_reflection * texture[..., None]))
    wheels = Image.new("L", (L, H))
    wd = ImageDraw.Draw(wheels)
    r = 0.18 * H
    for wx in (0.2 * L, 0.8 * L):
        wd.ellipse([wx - r, H - 1 - 2 * r, wx + r, H - 1], fill=255)
    layers.append((wheels, np.full((H, L, 3), 25, np.float32)))
    lights = Image.new("L", (L, H))
    ld = ImageDraw.Draw(lights)
    ld.rectangle([L - 0.04 * L, 0.45 * H, L - 1, 0.55 * H], fill=255)
    layers.append((lights, np.full((H, L, 3), 245, np.float32)))
    tail = Image.new("L", (L, H))
    ImageDraw.Draw(tail).rectangle([0, 0.45 * H, 0.03 * L, 0.55 * H], fill=255)
    layers.append((tail, np.array([200, 20, 20], np.float32) * np.ones((H, L, 1), np.float32)))
    return _finish_sprite(layers, (L, H))


@dataclass(frozen=True)
class Actor:
    """Something that moves: a ``"person"`` or a ``"car"``, ``size`` x picture height tall.

    ``path`` is a list of waypoints ``(t, x, y)``: at time ``t`` the object's horizontal centre is
    at ``x`` and its feet (or wheels) at ``y``, both as fractions of the picture. It moves in a
    straight line between waypoints (two equal positions in a row make it stand still) and
    exists only from the first waypoint's time to the last's: put those ends outside the picture
    for a crossing.
    """

    kind: str
    size: float
    path: tuple[tuple[float, float, float], ...]
    seed: int = 0

    def position(self, t: float) -> tuple[float, float] | None:
        """(x, y) in fractions at time ``t``, or None when the object does not exist yet/anymore."""
        p = self.path
        if t < p[0][0] or t > p[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(p, p[1:]):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + (x1 - x0) * f, y0 + (y1 - y0) * f
        return p[-1][1], p[-1][2]

    def is_moving(self, t: float) -> bool:
        p = self.path
        for (t0, x0, y0), (t1, x1, y1) in zip(p, p[1:]):
            if t0 <= t < t1:
                return (x0, y0) != (x1, y1)
        return False

    def box(self, t: float, width: int, height: int) -> tuple[float, float, float, float] | None:
        """Bounding box (x0, y0, x1, y1) in pixels, or None."""
        pos = self.position(t)
        if pos is None:
            return None
        h = self.size * height
        w = h * (0.5 if self.kind == "person" else 2.4)
        x, y = pos[0] * width, pos[1] * height
        return x - w / 2, y - h, x + w / 2, y

    def visible(self, t: float, width: int, height: int) -> bool:
        b = self.box(t, width, height)
        return b is not None and b[2] > 0 and b[0] < width and b[3] > 0 and b[1] < height

    def direction(self, t: float) -> int:
        """+1 moving (or last moved) right, -1 left: cars and walkers face where they go."""
        p = self.path
        sign = 1
        for (t0, x0, _), (t1, x1, _) in zip(p, p[1:]):
            if x1 != x0:
                sign = 1 if x1 > x0 else -1
            if t < t1:
                break
        return sign

    def distance(self, t: float) -> float:
        """Distance walked (fractions of the picture) by time ``t``: drives the walk cycle."""
        total = 0.0
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:]):
            f = min(1.0, max(0.0, (t - t0) / (t1 - t0))) if t1 > t0 else 1.0
            total += math.hypot(x1 - x0, y1 - y0) * f
            if t < t1:
                break
        return total


def crossing(kind: str, size: float, start: float, duration: float, y: float, left_to_right: bool = True,
             seed: int = 0, aspect: float = 16 / 9) -> Actor:
    """An actor that walks/drives across the whole picture at ``y`` in ``duration`` seconds.

    It starts just outside one edge and ends just outside the other, so the ground truth is
    exactly [start, start + duration]. ``aspect`` (width/height) converts the object's width,
    which is relative to the picture height, into a fraction of the picture width.
    """
    half = size * (0.5 if kind == "person" else 2.4) / 2 / aspect
    a, b = -half, 1 + half
    if not left_to_right:
        a, b = b, a
    return Actor(kind, size, ((start, a, y), (start + duration, b, y)), seed)


# --------------------------------------------------------------------------------------------------
# Nuisances
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """A tree whose crown sways in the wind for the whole clip: pixels oscillate by a few pixels.

    ``box`` is (x0, y0, x1, y1) in fractions of the picture; ``amplitude`` is the crown top's
    peak displacement in pixels at 640 pixels wide (scaled with the picture); ``frequency`` in Hz.
    """

    box: tuple[float, float, float, float]
    amplitude: float = 3.0
    frequency: float = 0.7
    seed: int = 0
    # Wind in gusts: 0 for the old steady breeze; 1 for calm spells broken by gusts of a second
    # or three that bend the crown up to three times as far, while each leaf flutters on its own
    # and glints as it turns (changes that are not a displacement of the crown).
    gusts: float = 0.0

    def __repr__(self) -> str:
        return _compact_repr(self, ("gusts",))


def _compact_repr(obj, added: tuple[str, ...]) -> str:
    """A dataclass's repr without the ``added`` fields that are at their defaults: the repr is the
    cache key of rendered clips, and a field added later must not re-render every clip made before it."""
    import dataclasses

    parts = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)
             if f.name not in added or getattr(obj, f.name) != f.default]
    return f"{type(obj).__name__}({', '.join(parts)})"


def _gust(t: float, seed: int) -> float:
    """Wind strength at ``t``: about 0.3 in the calm, up to 1 in a gust of a second or three, one
    every five to nine seconds at random (seeded)."""
    rng = np.random.default_rng(seed + 4099)
    starts = np.cumsum(rng.uniform(4.0, 9.0, 64)) - 3.0
    lengths = rng.uniform(1.0, 3.0, 64)
    strength = rng.uniform(0.6, 1.0, 64)
    level = 0.3
    for start, length, s in zip(starts, lengths, strength):
        if start <= t <= start + length:
            level = max(level, 0.3 + (s - 0.3) * math.sin(math.pi * (t - start) / length))
    return level


class _TreeLayer:
    """A rendered ``Tree``: crown texture and shape, resampled every frame through a sway field."""

    def __init__(self, tree: Tree, width: int, height: int):
        self.tree = tree
        scale = width / 640
        self.amp = tree.amplitude * scale
        m = int(math.ceil(self.amp)) + 3
        x0, y0, x1, y1 = tree.box
        self.x0, self.y0 = int(x0 * width) - m, int(y0 * height) - m
        self.x1, self.y1 = int(x1 * width) + m, int(y1 * height) + m
        h, w = self.y1 - self.y0, self.x1 - self.x0
        rng = np.random.default_rng(tree.seed + 7919)
        # Crown: a union of random ellipses; leaves: high-frequency dark/light greens.
        shape = Image.new("L", (w * 2, h * 2))
        d = ImageDraw.Draw(shape)
        trunk_w = max(2, w // 10)
        d.rectangle([w - trunk_w, int(h * 1.2), w + trunk_w, h * 2 - 2 * m], fill=255)
        for _ in range(14):
            ex, ey = rng.uniform(0.35, 1.65) * w, rng.uniform(2 * m, 1.3 * h)
            rx, ry = rng.uniform(0.18, 0.35) * w, rng.uniform(0.15, 0.3) * h
            d.ellipse([ex - rx, ey - ry, ex + rx, ey + ry], fill=255)
        self.alpha = np.asarray(shape.resize((w, h), Image.Resampling.BOX), np.float32) / 255
        leaves = fractal_noise(h, w, rng, (10 * scale + 1, 3 * scale + 1, 1.5, 1), 0.8)
        green = np.array([55, 95, 40], np.float32)
        self.rgb = green * (1 + 0.9 * leaves)[..., None]
        self.rgb[:, :, 0] += 20 * np.clip(leaves, 0, 1)  # sunlit leaf tips
        trunk = np.zeros((h, w), bool)
        trunk[int(0.6 * h):h - m, w // 2 - trunk_w // 2:w // 2 + trunk_w // 2] = True
        self.rgb[trunk] = [70, 52, 38]
        # Sway: stronger near the top, and the phase drifts across the crown (leaves are not rigid).
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.yy, self.xx = yy, xx
        self.weight = np.clip(1.15 - yy / h, 0, 1) ** 1.3
        self.phase = 2.5 * value_noise(h, w, max(4, w / 3), rng) + 6.0 * value_noise(h, w, 3 * scale + 1, rng) * 0.3
        if tree.gusts:
            # Leaves: each a few pixels across, with its own phase, so that they flutter apart.
            self.leaf = math.pi * (1 + value_noise(h, w, 2.5 * scale + 1, np.random.default_rng(tree.seed + 31)))

    def draw(self, frame: np.ndarray, t: float) -> None:
        f = self.tree.frequency
        if self.tree.gusts:
            gust = 0.75 + self.tree.gusts * 2.2 * (_gust(t, self.tree.seed) - 0.3)
        else:
            gust = 0.75 + 0.25 * math.sin(2 * math.pi * 0.09 * t + 1.0)  # wind strength varies slowly
        wave = (0.65 * np.sin(2 * math.pi * f * t + self.phase) + 0.35 * np.sin(2 * math.pi * 2.3 * f * t + 2 * self.phase))
        dx = self.amp * gust * self.weight * wave
        dy = 0.35 * dx * np.cos(self.phase)
        if self.tree.gusts:
            flutter = np.sin(2 * math.pi * 3.1 * t + self.leaf)
            dx = dx + 0.8 * self.amp / 3 * gust * flutter
            dy = dy + 0.5 * self.amp / 3 * gust * np.cos(2 * math.pi * 2.3 * t + self.leaf)
        rgb, alpha = _bilinear(self.rgb, self.alpha, self.yy - dy, self.xx - dx)
        if self.tree.gusts:  # leaves turning catch the light
            rgb = rgb * (1 + 0.12 * gust * np.sin(2 * math.pi * 1.7 * t + 2 * self.leaf))[..., None]
        H, W = frame.shape[:2]
        ys, xs = slice(max(0, self.y0), min(H, self.y1)), slice(max(0, self.x0), min(W, self.x1))
        oy, ox = ys.start - self.y0, xs.start - self.x0
        rgb = rgb[oy:oy + ys.stop - ys.start, ox:ox + xs.stop - xs.start]
        alpha = alpha[oy:oy + ys.stop - ys.start, ox:ox + xs.stop - xs.start, None]
        frame[ys, xs] = frame[ys, xs] * (1 - alpha) + rgb * alpha


def _bilinear(rgb: np.ndarray, alpha: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample an image and its alpha at fractional coordinates (edges clamped; alpha 0 outside)."""
    h, w = alpha.shape
    inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).astype(np.float32)
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = x - x0, y - y0

    def sample(a):
        if a.ndim == 3:
            fxx, fyy = fx[..., None], fy[..., None]
        else:
            fxx, fyy = fx, fy
        top = a[y0, x0] * (1 - fxx) + a[y0, x0 + 1] * fxx
        bottom = a[y0 + 1, x0] * (1 - fxx) + a[y0 + 1, x0 + 1] * fxx
        return top * (1 - fyy) + bottom * fyy

    return sample(rgb), sample(alpha) * inside


def _rain(frame: np.ndarray, t: float, density: float, seed: int) -> None:
    """Thin, bright, slanted streaks at new places every frame (a drop crosses the view in one exposure)."""
    H, W = frame.shape[:2]
    rng = np.random.default_rng([seed, 31, round(t * 1000)])
    n = int(density * W * H / 400)
    length = max(4, int(0.04 * H))
    x = rng.uniform(0, W, n)
    y = rng.uniform(-length, H, n)
    strength = rng.uniform(12, 40, n).astype(np.float32)
    k = np.arange(length)
    slant = 0.25
    xs = (x[:, None] + slant * k[None, :]).astype(np.int32)
    ys = (y[:, None] + k[None, :]).astype(np.int32)
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    add = np.broadcast_to(strength[:, None], xs.shape)[ok]
    frame *= 0.93  # rain dims and flattens the scene a little
    frame += 8
    np.add.at(frame, (ys[ok], xs[ok]), add[:, None])


class _SnowLayer:
    """Flakes drifting down and sideways; positions are closed-form in time, so any frame is cheap."""

    def __init__(self, density: float, width: int, height: int, seed: int):
        rng = np.random.default_rng(seed + 104729)
        n = int(density * width * height / 500)
        scale = width / 640
        # Mostly tiny far flakes; a few large, fast ones close to the lens.
        self.radius = np.clip(rng.gamma(1.5, 0.8, n) * scale, 0.5, 5 * scale)
        self.x0, self.y0 = rng.uniform(0, width, n), rng.uniform(0, height, n)
        self.speed = (18 + 22 * self.radius / scale) * scale * rng.uniform(0.8, 1.2, n)
        self.sway = rng.uniform(2, 8, n) * scale
        self.sway_f = rng.uniform(0.2, 0.6, n)
        self.phase = rng.uniform(0, 2 * math.pi, n)
        self.wind = 8 * scale
        self.brightness = rng.uniform(170, 245, n).astype(np.float32)
        self.w, self.h = width, height

    def draw(self, frame: np.ndarray, t: float) -> None:
        m = 6
        x = (self.x0 + self.wind * t + self.sway * np.sin(2 * math.pi * self.sway_f * t + self.phase)) % (self.w + 2 * m) - m
        y = (self.y0 + self.speed * t) % (self.h + 2 * m) - m
        H, W = frame.shape[:2]
        for r in np.unique(np.ceil(self.radius).astype(int)):
            sel = np.ceil(self.radius).astype(int) == r
            oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
            weight = np.clip(r + 0.5 - np.hypot(oy, ox), 0, 1).ravel()
            keep = weight > 0
            oy, ox, weight = oy.ravel()[keep], ox.ravel()[keep], weight[keep]
            ys = (y[sel, None] + oy[None]).astype(np.int32)
            xs = (x[sel, None] + ox[None]).astype(np.int32)
            value = np.broadcast_to(self.brightness[sel, None], ys.shape)
            wgt = np.broadcast_to(weight[None], ys.shape)
            ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
            ys, xs, value, wgt = ys[ok], xs[ok], value[ok], wgt[ok]
            frame[ys, xs] = frame[ys, xs] * (1 - wgt[:, None]) + (value * wgt)[:, None]


# --------------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """Everything about a clip's content; frozen, so its ``repr`` is a cache key.

    ``drift``: fractional brightness change over the whole clip (0.2 = 20 % brighter at the end),
    slightly stronger on one side of the picture, as when a cloud moves off the sun.
    ``flicker``: peak fractional brightness wobble, a sum of a few frequencies between 3 and 9 Hz.
    ``noise``: Gaussian sensor noise sigma in gray levels (luma; chroma gets about half).
    ``night``: dark, low-contrast, nearly grey picture (an IR-ish night mode) lit only by a pool of
    street-lamp light; pair with noise ~8.
    ``rain`` / ``snow``: densities, 0 for none, 1 for heavy.
    """

    width: int = 640
    height: int = 360
    duration: float = 10.0
    fps: float = 25.0
    background: str = "street"
    actors: tuple[Actor, ...] = ()
    trees: tuple[Tree, ...] = ()
    drift: float = 0.0
    flicker: float = 0.0
    noise: float = 2.0
    night: bool = False
    rain: float = 0.0
    snow: float = 0.0
    seed: int = 0
    # Camera behaviour (see ``_camera``): exposure steps ``((t, stops), ...)``, each taking effect in
    # one frame; ``pumping``, sunlight coming and going with clouds (0..1) while the auto-exposure
    # chases it; infrared night mode ``((on, off), ...)``; a burnt-in clock.
    exposure: tuple[tuple[float, float], ...] = ()
    pumping: float = 0.0
    ir: tuple[tuple[float, float], ...] = ()
    clock: bool = False

    def __repr__(self) -> str:
        return _compact_repr(self, ("exposure", "pumping", "ir", "clock"))

    # -- ground truth -------------------------------------------------------------------------

    def truth(self, resolution: float = 0.01) -> list[tuple[float, float]]:
        """Spans in which at least one object is visible and moving, in seconds (2 decimals)."""
        n = int(round(self.duration / resolution))
        moving = np.zeros(n, bool)
        for actor in self.actors:
            for i in range(n):
                t = (i + 0.5) * resolution
                if actor.is_moving(t) and actor.visible(t, self.width, self.height):
                    moving[i] = True
        spans, start = [], None
        for i, m in enumerate(moving):
            if m and start is None:
                start = i
            elif not m and start is not None:
                spans.append((round(start * resolution, 2), round(i * resolution, 2)))
                start = None
        if start is not None:
            spans.append((round(start * resolution, 2), round(n * resolution, 2)))
        return spans

    # -- rendering ------------------------------------------------------------------------------

    @cached_property
    def _static(self) -> dict:
        """What does not change from frame to frame, prepared once per scene."""
        rng = np.random.default_rng(self.seed)
        background = BACKGROUNDS[self.background](self.width, self.height, rng)
        sprites = []
        for actor in self.actors:
            arng = np.random.default_rng(actor.seed + 1000 * (self.seed + 1))
            px = round(actor.size * self.height)
            sprites.append(person_sprites(px, arng) if actor.kind == "person" else [car_sprite(px, arng)])
        # Brightness gradient for drift: the side the sun comes from brightens a bit more.
        ramp = np.linspace(0.8, 1.2, self.width, dtype=np.float32)[None, :, None]
        trees = [_TreeLayer(tree, self.width, self.height) for tree in self.trees]
        snow = _SnowLayer(self.snow, self.width, self.height, self.seed) if self.snow > 0 else None
        # Night: everything dim, except a pool of street-lamp light low in the picture.
        yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        pool = np.exp(-(((xx - 0.45 * self.width) / (0.3 * self.width)) ** 2 + ((yy - 0.85 * self.height) / (0.4 * self.height)) ** 2))
        lamp = (0.16 + 0.3 * pool)[..., None]
        flicker_rng = np.random.default_rng(self.seed + 17)
        flicker = [(f, flicker_rng.uniform(0, 2 * math.pi)) for f in (3.7, 5.9, 8.3)]
        # Pumping sunlight: where the sun falls (a soft field of shadows, the sky in shade), and
        # the infrared illuminator's hot spot.
        shade = np.clip(0.5 + 1.2 * value_noise(self.height, self.width, max(8, self.width / 5),
                                                np.random.default_rng(self.seed + 5)), 0.25, 0.9)
        shade[:int(0.42 * self.height)] = 0.85
        illuminator = 0.55 + 0.6 * np.exp(-(((xx - 0.5 * self.width) / (0.45 * self.width)) ** 2
                                            + ((yy - 0.6 * self.height) / (0.55 * self.height)) ** 2))
        return {"background": background, "sprites": sprites, "ramp": ramp, "trees": trees, "snow": snow,
                "flicker": flicker, "lamp": lamp, "shade": shade.astype(np.float32),
                "illuminator": illuminator.astype(np.float32)}

    def render(self, t: float) -> np.ndarray:
        """The frame at time ``t`` as uint8 (height, width, 3) RGB."""
        st = self._static
        frame = st["background"].copy()
        for layer in st["trees"]:
            layer.draw(frame, t)
        for actor, poses in zip(self.actors, st["sprites"]):
            self._draw_actor(frame, actor, poses, t)
        # Lighting: drift (slow, slightly non-uniform) and flicker (fast, uniform), around a black level.
        gain = 1.0
        if self.flicker:
            gain += self.flicker * sum(math.sin(2 * math.pi * f * t + p) for f, p in st["flicker"]) / 2.2
        black = 6.0
        if self.drift:
            g = gain * (1 + self.drift * (t / self.duration) * st["ramp"])
            frame = black + (frame - black) * g
        elif gain != 1.0:
            frame = black + (frame - black) * gain
        if self.rain:
            _rain(frame, t, self.rain, self.seed)
        if st["snow"] is not None:
            st["snow"].draw(frame, t)
        if self.night:
            luma = frame @ np.array([0.299, 0.587, 0.114], np.float32)
            frame = 0.25 * frame + 0.75 * luma[..., None]  # mostly grey, like a camera in night mode
            frame = 10 + frame * st["lamp"]
        infrared = any(on <= t < off for on, off in self.ir)
        if self.pumping or self.exposure or infrared:
            frame = _camera(self, frame, t, infrared)
        if self.noise:
            rng = np.random.default_rng([self.seed, 7, round(t * 1000)])
            h, w = self.height, self.width
            grain = self.noise * (2.5 if infrared else 1.0)  # IR: the sensor's gain turned up
            luma_noise = rng.standard_normal((h, w), np.float32) * grain
            chroma_noise = rng.standard_normal((h, w, 3), np.float32) * (grain * (0.1 if infrared else 0.5))
            frame = frame + luma_noise[..., None] + chroma_noise
        if self.clock:
            _burn_clock(frame, t)
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def _draw_actor(self, frame: np.ndarray, actor: Actor, poses, t: float) -> None:
        box = actor.box(t, self.width, self.height)
        if box is None:
            return
        stride = 0.45 * actor.size * self.height / self.width  # one walk cycle per ~two steps
        pose = int(actor.distance(t) / max(stride, 1e-6) * len(poses) / 2) % len(poses)
        rgb, alpha = poses[pose]
        if actor.direction(t) < 0:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        h, w = alpha.shape
        cx, bottom = (box[0] + box[2]) / 2, box[3]
        x0, y0 = int(round(cx - w / 2)), int(round(bottom - h))
        H, W = frame.shape[:2]
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if fx0 >= fx1 or fy0 >= fy1:
            return
        a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0, None]
        frame[fy0:fy1, fx0:fx1] = frame[fy0:fy1, fx0:fx1] * (1 - a) + rgb[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] * a

    def times(self) -> list[float]:
        """Constant-rate frame times over the clip."""
        return [i / self.fps for i in range(int(round(self.duration * self.fps)))]

    def frames(self, times: Iterable[float]) -> Iterator[tuple[float, np.ndarray]]:
        for t in times:
            yield t, self.render(t)


def _tone(frame: np.ndarray, gain: float) -> np.ndarray:
    """The picture as the camera renders it with ``gain`` times the light: back through its tone
    curve (sRGB's, without the linear toe) to the light, exposed ``gain`` times more, clipped where
    the sensor saturates, and through the curve again. Not a gain of the picture: the curve's offset
    lifts dark tones less than bright ones, and what saturates (sky, white walls) stops at white."""
    y = np.clip(frame / 255.0, 0.0, 1.0)
    light = ((y + 0.055) / 1.055) ** 2.4
    return 255.0 * np.clip(1.055 * np.minimum(light * gain, 1.0) ** (1 / 2.4) - 0.055, 0.0, 1.0)


def _exposure(scene: "Scene", t: float) -> float:
    """The exposure's factor at ``t``: each step's stops from the frame it happens in."""
    return 2.0 ** sum(stops for when, stops in scene.exposure if t >= when)


def _sunlight(t: float, seed: int) -> float:
    """Sunlight through passing clouds at ``t``: 1 in full sun, down to about 0.35 behind a cloud,
    changing over a second or two (a smooth random walk, seeded)."""
    rng = np.random.default_rng(seed + 271)
    knots = rng.uniform(0.35, 1.0, 200)
    knots[rng.random(200) < 0.25] = 1.0
    x = t / 1.5
    i = int(x)
    f = x - i
    f = f * f * (3 - 2 * f)
    return float(knots[i % 200] * (1 - f) + knots[(i + 1) % 200] * f)


def _auto_exposure(t: float, seed: int, amount: float) -> tuple[float, float]:
    """(light, exposure) at ``t`` for a scene whose sunlight comes and goes by ``amount``: the
    camera's auto-exposure follows the light a second late, in steps of a sixth of a stop, so the
    picture breathes: it darkens as a cloud comes, then brightens back before the sun returns."""
    light = lambda u: 1.0 - amount * (1.0 - _sunlight(u, seed))  # noqa: E731
    lagged = sum(light(t - 0.25 * k) for k in range(2, 7)) / 5
    stops = round(-math.log2(lagged) * 6) / 6
    return light(t), 2.0 ** stops


def _camera(scene: "Scene", frame: np.ndarray, t: float, infrared: bool) -> np.ndarray:
    """Exposure steps, sunlight pumping and infrared night mode, through the tone curve."""
    gain = _exposure(scene, t)  # the whole picture, in one frame: the auto-exposure's step
    if scene.pumping:
        light, exposure = _auto_exposure(t, scene.seed, scene.pumping)
        shade = scene._static["shade"]
        # What is in the sun follows the light; the shade and the sky much less.
        frame = frame * (shade + (1 - shade) * light)[..., None]
        gain *= exposure
    if infrared:
        # Near infrared: leaves reflect it (bright), blue sky and blue paint do not; the camera
        # shows one grey channel, and its illuminator lights the middle of the picture most.
        r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
        ir = 0.5 * r + 0.45 * g - 0.15 * b + 1.6 * np.clip(g - 0.5 * (r + b), 0, None) + 18
        ir = ir * scene._static["illuminator"] * 1.35
        frame = np.repeat(ir[..., None], 3, axis=2)
    return _tone(frame, gain) if gain != 1.0 else frame


_CLOCK_START = 9 * 3600 + 59 * 60 + 47  # 09:59:47: the minutes and the hour roll over in the first 13 s


def _burn_clock(frame: np.ndarray, t: float) -> None:
    """The camera's date and time, white on a black outline in the top-left corner, ticking once a
    second, drawn after the sensor's noise (the camera writes it into the picture it encodes)."""
    from PIL import ImageFont

    h, w = frame.shape[:2]
    size = max(9, round(0.035 * h))
    seconds = _CLOCK_START + int(t)
    text = f"2026-12-03 {seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text, stroke_width=2)
    box = Image.new("L", (right + 4, bottom + 4))
    stroke = box.copy()
    ImageDraw.Draw(stroke).text((2, 2), text, font=font, fill=255, stroke_width=2, stroke_fill=255)
    ImageDraw.Draw(box).text((2, 2), text, font=font, fill=255)
    x0, y0 = round(0.02 * w), round(0.02 * h)
    bh, bw = min(box.height, h - y0), min(box.width, w - x0)
    outline = np.asarray(stroke, np.float32)[:bh, :bw, None] / 255
    white = np.asarray(box, np.float32)[:bh, :bw, None] / 255
    region = frame[y0:y0 + bh, x0:x0 + bw]
    region *= 1 - outline
    region += 250 * white


def vfr_times(segments: Sequence[tuple[float, float, float]], jitter: float = 0.0, seed: int = 0) -> list[float]:
    """Frame times for (start, end, fps) segments, each time jittered by up to ``jitter`` seconds.

    Like a camera that records at a low rate when idle and a high one otherwise, or a phone whose
    rate sags in the dark: the frame index says nothing reliable about the time.
    """
    rng = np.random.default_rng(seed)
    times: list[float] = []
    for start, end, fps in segments:
        n = int(round((end - start) * fps))
        times.extend(start + i / fps for i in range(n))
    out = [times[0]] + [t + rng.uniform(-jitter, jitter) for t in times[1:]]
    return [round(t, 3) for t in out]


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------

PIX_FMT = {"mjpeg": "yuvj420p"}
QUIET = {"libx265": {"x265-params": "log-level=error"}}


def encode(scene: Scene, path: Path | str, codec: str = "libx264", bitrate: int = 400_000,
           times: Sequence[float] | None = None, gop: int | None = None, options: dict | None = None,
           rotation: int = 0, threads: int | None = None) -> Path:
    """Render ``scene`` and encode it to ``path`` (container from the suffix).

    ``times``: frame presentation times; irregular times make a variable-frame-rate file (stored
    with millisecond timestamps; the nominal rate stays ``scene.fps``, which is then wrong).
    ``gop``: keyframe interval in frames (a phone's 1 s GOP, or the encoder's default if None).
    ``rotation``: 90 renders the scene upright as given (portrait, width < height), stores it
    turned 90 degrees clockwise as a sensor would, and tags it with display rotation 90 so that
    players (and PyAV's ``frame.rotation``) turn it back counter-clockwise.
    ``threads``: encoder threads; 1 makes the output byte-for-byte reproducible (x264, x265 and
    libvpx decide differently depending on thread timing), at the cost of speed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rotation not in (0, 90):
        raise ValueError("rotation must be 0 or 90")
    times = list(times) if times is not None else scene.times()
    regular = all(abs((b - a) - 1 / scene.fps) < 1e-6 for a, b in zip(times, times[1:]))
    target = path if rotation == 0 else Path(tempfile.mkdtemp()) / ("raw" + path.suffix)
    stored_w, stored_h = (scene.height, scene.width) if rotation == 90 else (scene.width, scene.height)
    rate = Fraction(scene.fps).limit_denominator(1001)
    # bitexact: no random Matroska/WebM segment UIDs or version strings, so re-runs are identical.
    with av.open(str(target), "w", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = PIX_FMT.get(codec, "yuv420p")
        stream.bit_rate = bitrate
        opts = dict(QUIET.get(codec, {}))
        opts.update(options or {})
        if threads is not None:
            stream.codec_context.thread_count = threads
            if codec == "libx265" and threads == 1:
                opts["x265-params"] = opts.get("x265-params", "log-level=error") + ":pools=none:frame-threads=1"
        if gop is not None:
            stream.codec_context.gop_size = gop
            opts.setdefault("g", str(gop))
        stream.options = opts
        if not regular:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        for i, (t, picture) in enumerate(scene.frames(times)):
            if rotation == 90:
                picture = np.ascontiguousarray(np.rot90(picture, k=-1))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if regular:
                frame.pts = i
                frame.time_base = 1 / rate
            else:
                frame.pts = round(t * 1000)
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    if rotation:
        set_rotation(target, path, rotation)
        shutil.rmtree(target.parent, ignore_errors=True)
    return path


def set_rotation(src: Path | str, dst: Path | str, degrees: int) -> None:
    """Copy ``src`` to ``dst`` with a display-rotation tag (no re-encode), as phones write it."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", str(degrees),
                    "-i", str(src), "-c", "copy", "-fflags", "+bitexact", str(dst)], check=True)


def write_stills(scene: Scene, times: Sequence[float], paths: Sequence[Path | str], **save_options) -> list[Path]:
    """One still per time (format from each path's suffix), as a camera's snapshot burst."""
    written = []
    for t, path in zip(times, paths):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.render(t)).save(path, **save_options)
        written.append(path)
    return written
