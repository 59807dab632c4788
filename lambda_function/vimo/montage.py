"""Events -> the contact sheet: one tile per event in time order, each stamped HH:MM:SS.

The header says what was analysed (name, duration, resolution, how many events), so a sheet that
is forwarded or printed still explains itself; a clip without motion gets a sheet that plainly says
so rather than an empty image. Pillow's bundled font is used, because Lambda has no system fonts.

Each tile outlines what moved at its peak (``Event.box``), so that a real event is told from a false
one without opening the clip: a bright line between two dark ones, which stays visible on any
picture and through JPEG. When the caller gave regions, the part of the picture that was not looked
at is dimmed and the regions are outlined faintly. When the recording time is known, tiles show
the camera's clock and the header the date.
"""

from __future__ import annotations

import io
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from . import clock
from .events import Event, hhmmss
from .frames import VideoInfo
from .regions import mask

BACKGROUND = (24, 26, 30)
TEXT = (236, 238, 240)
MUTED = (150, 156, 166)
GAP = 6
JPEG_QUALITY = 85
BOX = (255, 214, 10)  # a signal yellow, unlike anything a camera usually sees
BOX_EDGE = (0, 0, 0)
REGION = (90, 200, 255, 150)  # the regions' outline, translucent
OUTSIDE = 0.4  # how much darker what was not looked at is


def contact_sheet(events: Sequence[Event], info: VideoInfo, name: str, options) -> bytes:
    """The contact sheet as a request's ``config.Options`` ask for it (tiles, boxes, regions)."""
    return render(events, info, name, options.columns, options.max_tiles, options.tile_width, boxes=options.boxes,
                  regions=options.regions, exclude=options.exclude)


def render(events: Sequence[Event], info: VideoInfo, name: str, columns: int, max_tiles: int,
           tile_width: int, boxes: bool = True, regions=None, exclude=None) -> bytes:
    """The contact sheet as JPEG bytes: the ``max_tiles`` strongest events, shown in time order,
    each with its box (unless ``boxes`` is false) and the ``regions``/``exclude`` polygons."""
    shown = sorted(sorted(events, key=lambda e: -e.score)[:max_tiles], key=lambda e: e.peak)
    tiled = [event for event in shown if event.tile is not None]
    tiles = [_annotate(event.tile, event.box if boxes else None, regions, exclude) for event in tiled]
    origin = clock.parse(info.recorded_at)
    columns = max(1, min(columns, len(tiles) or 1))
    tile_height = max((t.height for t in tiles), default=round(tile_width * 9 / 16))
    cell_width = max((t.width for t in tiles), default=tile_width)
    width = max(columns * (cell_width + GAP) + GAP, 480)
    header = _font(18), _font(13)
    header_height = 58
    rows = (len(tiles) + columns - 1) // columns or 1
    height = header_height + rows * (tile_height + GAP) + GAP

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    count = f"{len(events)} motion event{'s' if len(events) != 1 else ''}"
    if len(shown) < len(events):
        count += f" (the {len(shown)} strongest shown)"
    facts = f"{hhmmss(info.duration)} \u00b7 {info.width}x{info.height} \u00b7 {count}"
    if origin is not None:
        facts = f"{origin.strftime('%a %d %b %Y, %H:%M:%S')} {_offset(origin)} \u00b7 " + facts
    draw.text((GAP + 4, 10), _fit(draw, name, header[0], width - 2 * GAP), font=header[0], fill=TEXT)
    draw.text((GAP + 4, 34), facts, font=header[1], fill=MUTED)

    if not tiles:
        message = "No motion detected"
        box = draw.textbbox((0, 0), message, font=_font(22))
        draw.text(((width - box[2]) / 2, header_height + (tile_height - box[3]) / 2), message,
                  font=_font(22), fill=TEXT)
    label_font = _font(max(12, tile_width // 18))
    for index, (event, tile) in enumerate(zip(tiled, tiles)):
        x = GAP + (index % columns) * (cell_width + GAP) + (cell_width - tile.width) // 2
        y = header_height + (index // columns) * (tile_height + GAP) + (tile_height - tile.height) // 2
        sheet.paste(tile, (x, y))
        _label(sheet, event.label_at(origin), (x, y + tile.height), label_font)

    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _label(sheet: Image.Image, text: str, bottom_left: tuple[int, int], font) -> None:
    """White time on a translucent black box in the tile's lower-left corner, readable on any picture."""
    pad = 4
    box = font.getbbox(text)
    patch = Image.new("RGBA", (box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad), (0, 0, 0, 160))
    ImageDraw.Draw(patch).text((pad - box[0], pad - box[1]), text, font=font, fill=(255, 255, 255, 255))
    sheet.paste(patch, (bottom_left[0], bottom_left[1] - patch.height), patch)


def _annotate(tile: Image.Image, box, regions, exclude) -> Image.Image:
    """A copy of ``tile`` with the part not looked at dimmed, the regions outlined, and ``box``
    (fractions of the picture) outlined."""
    if box is None and not regions and not exclude:
        return tile
    tile = tile.convert("RGB")  # a copy
    w, h = tile.size
    if regions or exclude:
        outside = Image.fromarray(~mask((h, w), 0, regions, exclude))
        tile = Image.composite(Image.blend(tile, Image.new("RGB", (w, h)), OUTSIDE), tile, outside)
        overlay = Image.new("RGBA", (w, h))
        draw = ImageDraw.Draw(overlay)
        for polygon in regions or ():
            draw.polygon([(x * w, y * h) for x, y in polygon], outline=REGION, width=1)
        tile.paste(overlay, (0, 0), overlay)
    if box is not None:
        draw = ImageDraw.Draw(tile)
        x, y, bw, bh = box
        pad = 3
        left, top = max(0, round(x * w) - pad), max(0, round(y * h) - pad)
        right, bottom = min(w - 1, round((x + bw) * w) + pad), min(h - 1, round((y + bh) * h) + pad)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], outline=BOX_EDGE, width=4)
        draw.rectangle([left, top, right, bottom], outline=BOX, width=2)
    return tile


def _offset(when) -> str:
    """UTC+02:00, or UTC."""
    offset = when.strftime("%z")
    return "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "\u2026"
    return text


def _font(size: int):
    return ImageFont.load_default(size=size)
