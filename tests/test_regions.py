"""Regions, exclusions and boxes: where vimo looks, and what it shows moved.

The main scene is a street whose road carries traffic for the whole clip (a car every 2 s, in two
lanes), while two people walk along the pavement: without a region that is one event lasting the
whole clip; with a small region on the pavement, exactly the stretches of the two walks inside it;
with the road excluded, the two walks. Rendered by test_data/scenes.py (texture, sensor grain,
H.264 at a camera's bitrate), so the masks are judged on what real footage does to a detector.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import TEST_DATA, body_json, invoke, multipart_event, write_square_clip
from vimo import runners, segments
from vimo.analysis import analyze_clip, analyze_frames
from vimo.config import Options, Settings
from vimo.montage import BOX, GAP, render
from vimo.regions import View, mask, to_stored, to_upright
from vimo.upload import Part, Upload

sys.path.insert(0, str(TEST_DATA))
from scenes import Scene, crossing, encode  # noqa: E402

TOLERANCE = 1.0
WIDTH, HEIGHT = 640, 360
PAVEMENT = [[[0.3, 0.4], [0.7, 0.4], [0.7, 0.66], [0.3, 0.66]]]  # a small region: 10 % of the picture
ROAD = [[[0.0, 0.68], [1.0, 0.68], [1.0, 1.0], [0.0, 1.0]]]


def busy_street() -> tuple[Scene, tuple]:
    aspect = WIDTH / HEIGHT
    cars = tuple(crossing("car", 0.16, -1.0 + 2.0 * i, 2.5, 0.97 if i % 2 == 0 else 0.86, left_to_right=i % 2 == 0,
                          seed=30 + i, aspect=aspect) for i in range(13))
    people = (crossing("person", 0.14, 3.0, 7.0, 0.62, seed=1, aspect=aspect),
              crossing("person", 0.12, 14.0, 7.0, 0.62, left_to_right=False, seed=2, aspect=aspect))
    return Scene(width=WIDTH, height=HEIGHT, duration=24.0, fps=10.0, noise=2.0, seed=212, actors=cars + people), people


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    scene, people = busy_street()
    path = encode(scene, tmp_path_factory.mktemp("regions") / "street.mp4", bitrate=600_000)
    return path, scene, people


def spans_inside(people, polygon, step: float = 0.01) -> list[tuple[float, float]]:
    """When each person's box overlaps the (rectangular) region, in seconds."""
    (x0, y0), _, (x1, y1), _ = polygon
    spans = []
    for person in people:
        times = [i * step for i in range(int(24 / step))
                 if (b := person.box(i * step, WIDTH, HEIGHT)) and b[2] > x0 * WIDTH and b[0] < x1 * WIDTH
                 and b[3] > y0 * HEIGHT and b[1] < y1 * HEIGHT]
        spans.append((times[0], times[-1]))
    return spans


def analyse(path, **fields) -> dict:
    return analyze_clip(path, Options.parse({k: json.dumps(v) if isinstance(v, list) else v
                                             for k, v in fields.items()}), Settings()).to_dict()


def assert_spans(events, truth, what):
    found = [(e["start"], e["end"]) for e in events]
    assert len(found) == len(truth), f"{what}: found {found}, truth {truth}"
    for (start, end), (t0, t1) in zip(found, truth):
        assert abs(start - t0) <= TOLERANCE and abs(end - t1) <= TOLERANCE, f"{what}: found {found}, truth {truth}"


def test_a_small_region_finds_exactly_the_events_inside_it(street):
    path, _, people = street
    events = analyse(path, regions=PAVEMENT)["events"]
    assert_spans(events, spans_inside(people, PAVEMENT[0]), "pavement region")


def test_without_the_region_the_traffic_is_found(street):
    path, _, _ = street
    events = analyse(path)["events"]
    covered = sum(e["end"] - e["start"] for e in events)
    assert covered > 18, f"the traffic should keep the clip busy: {events}"
    assert any(e["start"] <= 12.0 <= e["end"] for e in events), "11-13 s only cars move, and they count"


def test_excluding_the_road_finds_the_two_walks(street):
    path, scene, people = street
    events = analyse(path, exclude=ROAD)["events"]
    assert_spans(events, [(p.path[0][0], p.path[-1][0]) for p in people], "road excluded")


def test_an_exclusion_inside_a_region_is_taken_out(street):
    """The region covers the whole pavement; excluding its right half leaves only the left half's walks."""
    path, _, people = street
    left = [[0.0, 0.4], [0.5, 0.4], [0.5, 0.66], [0.0, 0.66]]
    events = analyse(path, regions=[[[0, 0.4], [1, 0.4], [1, 0.66], [0, 0.66]]],
                     exclude=[[[0.5, 0.3], [1, 0.3], [1, 0.7], [0.5, 0.7]]])["events"]
    assert_spans(events, spans_inside(people, left), "right half excluded")


def visible_box(scene: Scene, t: float, near) -> tuple[float, float, float, float]:
    """The box (fractions) of the pixels a person changes at ``t``, from the scene rendered with and
    without them (noise off), looked for around their nominal box ``near``."""
    quiet = dataclasses.replace(scene, noise=0.0)
    empty = dataclasses.replace(scene, noise=0.0, actors=())
    diff = np.abs(quiet.render(t).astype(int) - empty.render(t).astype(int)).max(axis=2) > 20
    x0, y0, x1, y1 = (max(0, round(v)) for v in near)
    ys, xs = np.nonzero(diff[y0:y1 + 1, x0:x1 + 1])
    return ((x0 + xs.min()) / WIDTH, (y0 + ys.min()) / HEIGHT, (x0 + xs.max() + 1) / WIDTH, (y0 + ys.max() + 1) / HEIGHT)


@pytest.mark.parametrize("fields", [{"regions": PAVEMENT}, {"exclude": ROAD}])
def test_each_box_contains_the_moving_person_at_the_peak(street, fields):
    path, scene, people = street
    events = analyse(path, **fields)["events"]
    assert len(events) == 2
    slack = 2 / 480  # two pixels of the analysis frame
    for event, person in zip(events, people):
        x, y, w, h = event["box"]
        px0, py0, px1, py1 = visible_box(scene, event["peak"], person.box(event["peak"], WIDTH, HEIGHT))
        assert x - slack <= px0 and y - slack <= py0 and px1 <= x + w + slack and py1 <= y + h + slack, \
            f"box {event['box']} misses the person at {(px0, py0, px1, py1)} ({event['peak']} s)"
        assert w * h < 0.03, f"box {event['box']} is far larger than a person"


def test_boxes_are_upright_fractions_on_a_rotated_phone_clip():
    """portrait_rot90.mp4 is stored sideways: regions and boxes are of the upright picture, where a
    person 30 % high walks along the bottom (0.6 to 0.9 of the height) from 2 to 6 s."""
    clip = TEST_DATA / "portrait_rot90.mp4"
    (event,) = analyse(clip)["events"]
    x, y, w, h = event["box"]
    assert abs(y - 0.6) < 0.03 and abs(y + h - 0.9) < 0.03
    assert analyse(clip, regions=[[[0, 0], [1, 0], [1, 0.4], [0, 0.4]]])["events"] == []  # above the person
    (left,) = analyse(clip, regions=[[[0, 0], [0.4, 0], [0.4, 1], [0, 1]]])["events"]
    assert left["box"][0] + left["box"][2] <= 0.4 + 0.01 and left["box"][1] == pytest.approx(0.6, abs=0.03)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_points_map_to_the_stored_picture_and_back(rotation):
    for point in [(0.1, 0.2), (0.9, 0.05), (0.5, 0.5)]:
        assert to_upright(*to_stored(*point, rotation), rotation) == pytest.approx(point)
    # A region on the upright picture's top-left quarter, on a stored frame turned by ``rotation``:
    upright = np.zeros((40, 80), bool)
    upright[:20, :40] = True
    stored = np.rot90(upright, k=-rotation // 90)  # what the sensor stored; rotation turns it back
    drawn = mask(stored.shape, rotation, [[(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)]], None)
    assert (drawn == stored).mean() > 0.98


def test_a_view_crops_to_the_regions_and_measures_areas_on_the_whole_picture():
    view = View.of((270, 480), 0, [[(0.25, 0.5), (0.5, 0.5), (0.5, 1.0), (0.25, 1.0)]], None)
    assert 135 <= view.y1 - view.y0 <= 136 and 120 <= view.x1 - view.x0 <= 121 and view.inside is None  # edges inclusive
    assert view.pixels == 270 * 480
    assert View.of((270, 480), 0, None, [[(0, 0), (1, 0), (1, 1), (0, 1)]]).inside.sum() == 0


# -- tiles ----------------------------------------------------------------------------------------------


def test_the_tile_outlines_the_box_and_boxes_false_turns_it_off(street):
    path, _, _ = street
    options = Options.parse({"regions": json.dumps(PAVEMENT)})
    result = analyze_clip(path, options, Settings())
    event = result.events[0]
    x, y, w, h = event.box

    def outline(boxes: bool) -> float:
        sheet = render([event], result.video, "s.mp4", 1, 1, options.tile_width, boxes=boxes, regions=options.regions)
        picture = np.asarray(Image.open(io.BytesIO(sheet)).convert("RGB")).astype(int)
        tile = event.tile
        left, top = GAP, 58  # the first tile's corner: below the header, one gap from the edge
        row = top + round((y + h / 2) * tile.height)
        columns = [left + round(x * tile.width) - 3, left + round((x + w) * tile.width) + 3]
        near = np.concatenate([picture[row - 2:row + 3, c - 2:c + 3].reshape(-1, 3) for c in columns])
        return float(np.mean(np.all(np.abs(near - BOX) < 60, axis=1)))

    assert outline(True) > 0.15, "the yellow outline is not where the box is"
    assert outline(False) == 0.0


# -- the options, on every way in -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    """The dark square crosses the whole width from 2 to 4 s (row 80-160 of 240)."""
    return write_square_clip(tmp_path_factory.mktemp("sq") / "sq.mp4", seconds=6.0, moving=((2.0, 4.0),))


SKY = json.dumps([[[0, 0], [1, 0], [1, 0.25], [0, 0.25]]])  # above the square's path
MIDDLE = json.dumps([[[0, 0.3], [1, 0.3], [1, 0.7], [0, 0.7]]])


def test_regions_as_a_form_field_a_query_parameter_and_in_a_json_body(square):
    data = square.read_bytes()
    clip = ("clip", ("sq.mp4", data, "video/mp4"))
    assert body_json(invoke(multipart_event([clip, ("format", "json"), ("regions", SKY)])))["events"] == []
    found = body_json(invoke(multipart_event([clip, ("format", "json")], query={"regions": MIDDLE})))["events"]
    assert len(found) == 1 and found[0]["box"][1] >= 0.3 - 0.01


def test_regions_and_boxes_in_a_json_body(square, tmp_path, monkeypatch):
    from conftest import gateway_event, serving_files

    with serving_files(square.parent) as base:
        monkeypatch.setenv("VIMO_ALLOW_LOOPBACK_URLS", "1")
        for regions, count in ((json.loads(SKY), 0), (json.loads(MIDDLE), 1)):
            body = json.dumps({"movie_url": f"{base}/{square.name}", "format": "json", "regions": regions,
                               "boxes": False})
            response = invoke(gateway_event(body, "application/json"))
            assert response["statusCode"] == 200, response["body"]
            assert len(body_json(response)["events"]) == count


@pytest.mark.parametrize("value, words", [
    ("[[[0.1,0.1],[0.5,0.1]]]", "at least 3"),
    ("[[[0.1,0.1],[1.5,0.1],[0.5,0.5]]]", "outside the picture"),
    ("[[[0.1,0.1],[-0.1,0.1],[0.5,0.5]]]", "outside the picture"),
    ("[[[0.1,0.1],[0.5,0.1],[0.5,0.5]]", "not valid JSON"),
    (json.dumps([[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]] * 21), "at most 20"),
    (json.dumps([[[i / 200, 0.1] for i in range(101)]]), "at most 100"),
    ("[[[0.1,0.1],[0.5],[0.5,0.5]]]", "two numbers"),
    ("[]", "non-empty"),
    ("[" * 100_000, "not valid JSON"),
    ('[[[NaN,0.1],[0.5,0.1],[0.5,0.5]]]', "outside the picture"),
    ('[[[0.1,0.1],[0.5,0.1],{"x":1}]]', "two numbers"),
    ("0.1,0.1 0.5,x 0.5,0.5", "x,y"),
])
@pytest.mark.parametrize("name", ["regions", "exclude"])
def test_bad_polygons_are_refused_with_a_reason(square, name, value, words):
    response = invoke(multipart_event([("clip", ("sq.mp4", square.read_bytes(), "video/mp4")), (name, value)]))
    assert response["statusCode"] == 400
    error = body_json(response)["error"]
    assert error["code"] == "bad_option" and words in error["message"] and name in error["message"], error


def test_the_short_form_and_one_polygon_on_its_own_are_accepted():
    one = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.5))
    assert Options.parse({"regions": "0.1,0.1 0.5,0.1 0.5,0.5"}).regions == (one,)
    assert Options.parse({"regions": "[[0.1,0.1],[0.5,0.1],[0.5,0.5]]"}).regions == (one,)
    assert Options.parse({"exclude": "0.1,0.1 0.5,0.1 0.5,0.5; 0,0 1,0 1,1"}).exclude == (one, ((0, 0), (1, 0), (1, 1)))
    assert Options.parse({"boxes": "false"}).boxes is False and Options().boxes is True


def test_a_burst_gets_regions_and_boxes(square_frames):
    """Frames 3 and 4 (2 and 3 s) show the square in rows 80-160 of 240."""
    parts = tuple(Part(f, "image/jpeg", f"{i}.jpg") for i, f in enumerate(square_frames))
    found = analyze_frames(Upload(options=Options.parse({"regions": MIDDLE}), frames=parts), Settings()).to_dict()
    assert len(found["events"]) == 1 and 0.3 <= found["events"][0]["box"][1] <= 0.4
    sky = analyze_frames(Upload(options=Options.parse({"regions": SKY}), frames=parts), Settings()).to_dict()
    assert sky["events"] == []


def test_segments_get_the_regions_and_keep_the_boxes(tmp_path):
    """A clip cut into segments over a local pool gives the one pass's events, boxes and all; and
    the options and boxes survive the Lambda wire format."""
    clip = write_square_clip(tmp_path / "long.mp4", seconds=12.0, moving=((2.2, 5.2), (8.5, 10.5)), size=(160, 120),
                             gop=25)
    options = Options.parse({"regions": "0,0.3 0.5,0.3 0.5,0.7 0,0.7"})
    serial = analyze_clip(clip, options, Settings())
    assert len(serial.events) == 2 and all(e.box[0] + e.box[2] <= 0.51 for e in serial.events)
    pooled = runners.analyze(clip, options, Settings(segment_seconds=2.0, workers=2, fanout_threshold=5.0))
    assert [(round(e.peak, 2), e.box) for e in pooled.events] == [(round(e.peak, 2), e.box) for e in serial.events]
    assert segments.options_from_dict(json.loads(json.dumps(segments.options_to_dict(options)))) == options
    wired = segments.result_from_dict(json.loads(json.dumps(segments.result_to_dict(serial, 24))))
    assert [e.box for e in wired.events] == [e.box for e in serial.events]
    joined = segments._join(serial.events[0], serial.events[1])
    assert joined.box == max(serial.events, key=lambda e: e.score).box
