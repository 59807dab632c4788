"""The upload page, end to end in a real headless Chromium against the local gateway.

The browser is Debian's Chromium (``make browser`` installs it), driven by the ``playwright`` Python
package with ``executable_path``: Playwright never downloads a browser of its own here. Chromium is
started with the flags that keep it off the network (no background services, no QUIC, no sync).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import serving, write_square_clip
from PIL import Image
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)

from vimo.gateway import Gateway

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 30_000


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is not installed: run `make browser` (apt-get install chromium), or set CHROMIUM to its "
                    "path.", pytrace=False)
    return path


@pytest.fixture(scope="module")
def gateway():
    """The local API Gateway stand-in, without a results bucket; its base URL."""
    with serving(Gateway(("127.0.0.1", 0), workers=2)) as url:
        yield url + "/"


@pytest.fixture
def s3_gateway(s3_bucket):
    """A gateway of its own with a results bucket on moto's S3, and an API key ("k-big"). Created after
    s3_bucket has set the environment, which its worker processes (spawned on first use) inherit.
    The bucket takes browser uploads from any origin, as template.yaml's CORS rule allows."""
    s3_bucket.client.put_bucket_cors(Bucket=s3_bucket.name, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["POST"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 3000}]})
    with serving(Gateway(("127.0.0.1", 0), workers=2, api_key="k-big")) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The playwright package is missing: run `make browser`.", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (its own empty localStorage) per test; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """10 s of 320x240 texture: a dark square crosses at 1-2.5 s and again, faster, at 6-7 s."""
    return write_square_clip(tmp_path_factory.mktemp("page") / "crossing.mp4", seconds=10.0,
                             moving=((1.0, 2.5), (6.0, 7.0)))


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    """4 s of 1280x720 with a keyframe every 6 frames: too big for one request through API Gateway.
    A dark square crosses at 1-2.5 s."""
    path = write_square_clip(tmp_path_factory.mktemp("big") / "big.mp4", seconds=4.0, size=(1280, 720), gop=6,
                             moving=((1.0, 2.5),))
    assert path.stat().st_size > 4_400_000
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[Path]:
    """Five PNG stills; a block appears in the third and is gone again in the fifth."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(3)
    background = (rng.random((180, 240, 3)) * 60 + 100).astype(np.uint8)
    paths = []
    for i in range(5):
        picture = background.copy()
        if i in (2, 3):
            picture[40:120, 60 + 40 * (i - 2):140 + 40 * (i - 2)] = 15
        # Named so that plain string order would be wrong (frame-10 before frame-2): the page sorts naturally.
        path = folder / f"frame-{i * 5}.png"
        Image.fromarray(picture).save(path)
        paths.append(path)
    return paths


def run(page, files) -> None:
    page.set_input_files("#file", files)
    page.click("#go")
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])")


def event_rows(page) -> list[list[str]]:
    return page.eval_on_selector_all("#events tbody tr",
                                     "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")


def test_clip_gives_montage_and_event_table(page, gateway, clip):
    page.goto(gateway)
    assert page.is_disabled("#go"), "nothing chosen yet, so nothing to send"
    responses = []
    page.on("response", lambda r: responses.append(r) if r.url.endswith("/motion") else None)
    run(page, clip)

    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#montage", "img => img.complete && img.naturalWidth") > 0
    assert page.get_attribute("#montage", "src").startswith("blob:")
    rows = event_rows(page)
    assert len(rows) == 2
    (n1, peak1, start1, end1, *_), (n2, peak2, start2, *_) = rows
    assert (n1, n2) == ("1", "2")
    assert peak1 == "00:00:01" and peak2 == "00:00:06"
    assert start1.startswith("0:00.") or start1.startswith("0:01."), start1
    assert start2.startswith("0:05.") or start2.startswith("0:06."), start2
    assert "2 events" in page.inner_text("#facts") and "320×240" in page.inner_text("#facts")
    assert page.get_attribute("#results", "data-events") == "2"
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    assert page.inner_text("#status").startswith("Done")

    # Two requests went out: one for the events as JSON, one for the picture as a JPEG.
    by_type = {r.headers.get("content-type"): r for r in responses}
    assert set(by_type) == {"application/json", "image/jpeg"}
    assert by_type["image/jpeg"].headers.get("x-motion-events") == "2"
    assert by_type["image/jpeg"].request.headers.get("accept") == "image/jpeg"
    # Clicking an event seeks the preview player to where the event starts.
    page.click("#events tbody tr:nth-child(2)")
    assert page.eval_on_selector("#preview", "v => v.currentTime") == pytest.approx(float(rows[1][2][2:]), abs=0.2)


def test_frames_are_sent_in_name_order(page, gateway, frames):
    # Chromium does not report blob bodies to Playwright, so record what the page appends instead.
    page.add_init_script("""
        window.appended = [];
        const append = FormData.prototype.append;
        FormData.prototype.append = function (name, value, filename) {
            window.appended.push([name, filename || String(value)]);
            return append.apply(this, arguments);
        };""")
    page.goto(gateway)
    page.set_input_files("#file", [str(p) for p in reversed(frames)])
    assert page.is_visible("#interval") and page.is_hidden("#step"), "a burst takes an interval, not a step"
    assert page.inner_text("#chosen").startswith("5 photos")
    page.fill("#interval", "0.5")
    page.click("#go")
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])")
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#montage", "img => img.naturalWidth") > 0
    assert len(event_rows(page)) == 1
    assert "stills" in page.inner_text("#facts")
    appended = page.evaluate("window.appended")
    first_request = appended[:appended.index(["format", "json"]) + 1]  # the JSON request's form
    assert [v for k, v in first_request if k == "frame"] == [f"frame-{i}.png" for i in (0, 5, 10, 15, 20)]
    options = dict(kv for kv in first_request if kv[0] != "frame")
    assert options["interval"] == "0.5" and options["format"] == "json" and "step" not in options


def test_api_error_is_shown_in_words(page, gateway, tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"this is not a video at all\n" * 50)
    page.goto(gateway)
    run(page, junk)
    assert page.is_hidden("#results")
    text = page.inner_text("#error")
    assert "The file could not be used." in text
    assert "not a video" in text and "not_a_video" in text
    assert page.is_hidden("#progress-box")
    assert page.is_enabled("#go"), "after an error the user can try again"


def test_bad_option_is_caught_before_upload(page, gateway, clip):
    page.goto(gateway)
    page.set_input_files("#file", clip)
    page.fill("#columns", "40")
    sent = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/motion") else None)
    page.click("#go")
    assert "Columns: enter a value from 1 to 12." in page.inner_text("#error")
    assert not sent


def test_photos_over_the_request_limit_are_refused_before_upload(page, gateway, tmp_path):
    """Photos cannot go through S3: more than 4.4 MB of them is refused when chosen and when sent."""
    rng = np.random.default_rng(4)
    photos = []
    for i in range(2):  # noise does not compress: about 2.6 MB each
        photos.append(tmp_path / f"{i}.png")
        Image.fromarray((rng.random((720, 1200, 3)) * 255).astype(np.uint8)).save(photos[-1])
    page.goto(gateway)
    page.set_input_files("#file", [str(p) for p in photos])
    assert "of photos per request. Send fewer photos." in page.inner_text("#error")
    sent = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/motion") else None)
    page.click("#go")
    assert "of photos per request. Send fewer photos." in page.inner_text("#error")
    assert not sent


def test_api_key_is_sent_across_origins_and_remembered(page, gateway, clip):
    """Page from one origin, API at another (as when the page is opened against the deployed API):
    the key goes in x-api-key through a CORS preflight, and survives a reload."""
    page.goto(gateway.replace("127.0.0.1", "localhost"))
    page.click("#api summary")
    page.fill("#base", gateway)
    page.dispatch_event("#base", "change")
    page.fill("#key", "k-123")
    headers = []
    page.on("request", lambda r: headers.append(r.headers) if r.url.endswith("/motion") and r.method == "POST" else None)
    run(page, clip)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#montage", "img => img.naturalWidth") > 0
    assert len(headers) == 2 and all(h.get("x-api-key") == "k-123" for h in headers)

    page.reload()
    assert page.input_value("#key") == "k-123"
    assert page.input_value("#base") == gateway
    assert "key set" in page.inner_text("#api-summary")
    page.click("#api summary")
    page.click("#key-forget")
    page.reload()
    assert page.input_value("#key") == ""


def test_unreachable_api_is_explained(page, gateway, clip):
    page.goto(gateway)
    page.click("#api summary")
    page.fill("#base", "http://127.0.0.1:9/")  # the discard port: nothing listens there
    run(page, clip)
    assert "Could not reach the API." in page.inner_text("#error")


def test_fits_a_phone_screen(browser, gateway, clip):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(gateway)
        assert page.input_value("#columns") == "2", "phones get two tiles per row"
        run(page, clip)
        assert page.eval_on_selector("#montage", "img => img.naturalWidth") > 0
        # Nothing sticks out sideways: the page scrolls only vertically.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        box = page.locator("#montage").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
        assert page.locator("#go").bounding_box()["height"] >= 44, "a thumb-sized button"
    finally:
        context.close()


def test_big_clip_goes_straight_to_s3(page, s3_gateway, s3_bucket, big_clip):
    """Over 4.4 MB: POST /uploads, the clip to S3 with the presigned form (progress shown, no API
    key), then /motion once with its s3_key and delivery=s3 (one analysis gives the events and the
    stored montage's URL); the results look as for a small clip."""
    page.add_init_script("""
        window.statuses = [];
        addEventListener("DOMContentLoaded", () => new MutationObserver(
            () => statuses.push(document.getElementById("status").textContent)
        ).observe(document.getElementById("status"), {childList: true, characterData: true, subtree: true}));""")
    page.goto(s3_gateway)
    # Loopback is too fast to see progress: upload at 8 MB/s, so that the clip takes most of a second.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 8e6})
    page.click("#api summary")
    page.fill("#key", "k-big")
    posts = []
    page.on("requestfinished", lambda r: posts.append(r) if r.method == "POST" else None)
    run(page, big_clip)

    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#montage", "img => img.complete && img.naturalWidth") > 0
    rows = event_rows(page)
    assert len(rows) == 1 and rows[0][2].startswith(("0:00.", "0:01.")) and rows[0][3].startswith("0:02."), rows
    assert "1 event" in page.inner_text("#facts") and "1280×720" in page.inner_text("#facts")
    assert page.inner_text("#status").startswith("Done")
    statuses = page.evaluate("statuses")  # upload progress of the S3 POST, the only upload of any size
    uploading = [s for s in statuses if s.startswith("Uploading…")]
    assert uploading and all(s.endswith(" MB (straight to storage)") for s in uploading), statuses
    assert "Uploaded. Finding the motion…" in statuses, statuses

    [uploads, to_s3, *motions] = posts
    assert uploads.url == s3_gateway + "uploads" and uploads.all_headers().get("x-api-key") == "k-big"
    assert to_s3.url.startswith(s3_bucket.endpoint) and "x-api-key" not in to_s3.all_headers()
    [stored] = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="uploads/")["Contents"]
    assert stored["Size"] == big_clip.stat().st_size
    [motion] = motions
    assert motion.url == s3_gateway + "motion" and motion.all_headers().get("x-api-key") == "k-big"
    assert motion.all_headers()["accept"] == "application/json"
    sent = json.loads(motion.post_data)
    assert sent["s3_key"] == stored["Key"] and sent["format"] == "json" and sent["delivery"] == "s3"
    assert page.get_attribute("#montage", "src").startswith(s3_bucket.endpoint)


# -- where to look: regions drawn on a frame ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_places(tmp_path_factory) -> Path:
    """10 s of 320x240 texture: a dark square crosses the top third at 1-2.5 s, the bottom third at 6-7.5 s."""
    import av

    path = tmp_path_factory.mktemp("where") / "two-places.mp4"
    rng = np.random.default_rng(5)
    background = (rng.random((240, 320, 3)) * 60 + 100).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(250):
            frame, t = background.copy(), i / 25
            for start, top in ((1.0, 20), (6.0, 170)):
                if start <= t < start + 1.5:
                    x = int((t - start) / 1.5 * (320 - 50))
                    frame[top:top + 50, x:x + 50] = 20
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def drag_outline(page, corners) -> None:
    """Drag the mouse around ``corners`` (fractions of the drawing canvas) and let go."""
    page.locator("#where-canvas").scroll_into_view_if_needed()
    box = page.locator("#where-canvas").bounding_box()
    points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in corners]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:] + points[:1]:
        page.mouse.move(*point, steps=12)
    page.mouse.up()


def test_a_region_drawn_on_a_frame_limits_the_montage_to_it(page, gateway, two_places):
    page.goto(gateway)
    assert page.is_hidden("#where")
    page.set_input_files("#file", two_places)
    page.wait_for_selector("#where-canvas[data-ready]")
    assert page.get_attribute("#where-canvas", "data-ready") == "frame", "a frame of the clip to draw on"
    # The canvas shows the clip's own picture: textured, not a flat placeholder.
    spread = page.eval_on_selector("#where-canvas", """c => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
        return hi - lo; }""")
    assert spread > 30

    drag_outline(page, [(0.05, 0.6), (0.95, 0.6), (0.95, 0.95), (0.05, 0.95)])  # the bottom third
    [region] = json.loads(page.input_value("#regions"))
    assert 3 <= len(region) <= 100
    xs, ys = [p[0] for p in region], [p[1] for p in region]
    assert min(xs) == pytest.approx(0.05, abs=0.02) and max(xs) == pytest.approx(0.95, abs=0.02)
    assert min(ys) == pytest.approx(0.6, abs=0.02) and max(ys) == pytest.approx(0.95, abs=0.02)
    assert page.inner_text("#where-count") == "1 region, 0 exclusions"

    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/motion") else None)
    page.click("#go")
    page.wait_for_selector("#results:not([hidden]), #error:not([hidden])")
    assert page.is_hidden("#error"), page.inner_text("#error")
    rows = event_rows(page)
    assert len(rows) == 1 and rows[0][1] in ("00:00:06", "00:00:07"), rows  # only the bottom crossing
    assert page.get_attribute("#results", "data-events") == "1"
    assert page.eval_on_selector("#montage", "img => img.complete && img.naturalWidth") > 0
    assert requests and all(r.headers.get("content-type", "").startswith("multipart/form-data") for r in requests)

    # An exclusion over the same third instead: only the top crossing is left.
    page.click("#clear")
    assert page.input_value("#regions") == "" and page.inner_text("#where-count") == "the whole picture"
    page.check("input[name=draw][value=exclude]")
    drag_outline(page, [(0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)])
    assert len(json.loads(page.input_value("#exclude"))) == 1
    page.click("#go")
    page.wait_for_selector("#go:not([disabled])")
    rows = event_rows(page)
    assert len(rows) == 1 and rows[0][1] in ("00:00:01", "00:00:02"), rows


def test_a_region_is_drawn_with_a_finger_and_clock_times_are_shown(browser, gateway, two_places):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                  timezone_id="Europe/Paris")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(gateway)
        page.set_input_files("#file", two_places)
        page.wait_for_selector("#where-canvas[data-ready]")
        page.locator("#where-canvas").scroll_into_view_if_needed()
        box = page.locator("#where-canvas").bounding_box()
        # A finger's drag, as the touchscreen sends it (Chromium turns it into "touch" pointer events).
        cdp = context.new_cdp_session(page)
        x0, y0 = box["x"] + 0.02 * box["width"], box["y"] + 0.05 * box["height"]
        x1, y1 = box["x"] + 0.98 * box["width"], box["y"] + 0.35 * box["height"]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        here = (x0, y0)
        for corner in [(x1, y0), (x1, y1), (x0, y1), (x0, y0)]:
            for i in range(1, 11):
                point = (here[0] + (corner[0] - here[0]) * i / 10, here[1] + (corner[1] - here[1]) * i / 10)
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": point[0], "y": point[1]}]})
            here = corner
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        assert len(json.loads(page.input_value("#regions"))) == 1
        page.fill("#recorded", "2026-05-01T14:03:00")
        page.click("#go")
        page.wait_for_selector("#results:not([hidden]), #error:not([hidden])")
        assert page.is_hidden("#error"), page.inner_text("#error")
        rows = event_rows(page)
        assert len(rows) == 1 and rows[0][1] in ("14:03:01", "14:03:02"), rows  # the top crossing, by the clock
    finally:
        context.close()


def write_switch_clip(path: Path, seconds: float = 8.0, switch: float = 5.0, size=(320, 240), rate: int = 25) -> Path:
    """A colourful textured scene that a dark square crosses at 1-2.5 s; at ``switch`` seconds the
    camera turns to its infrared night mode: grey, another mix of the colours, brighter and grainier."""
    import av

    width, height = size
    rng = np.random.default_rng(1)
    background = rng.random((height, width, 3)) * 60 + 100
    infrared = background @ np.array([0.15, 0.95, -0.1]) * 1.3 + 10
    square = width * 3 // 16
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * rate)):
            t = i / rate
            frame = background.copy() if t < switch else \
                np.repeat(infrared[..., None], 3, axis=2) + rng.normal(0, 6, (height, width, 1))
            if 1.0 <= t < 2.5:
                x = int((t - 1.0) / 1.5 * (width - square))
                frame[height // 3:2 * height // 3, x:x + square] = 20
            picture = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_timeline_strip_shows_motion_events_and_what_was_set_aside(page, gateway, tmp_path):
    """The page asks for the timeline and draws it: a bar per sample, the event over its span, and
    the camera's switch to night mode shaded, with a legend that names it."""
    clip = write_switch_clip(tmp_path / "switch.mp4")
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/motion") else None)
    page.goto(gateway)
    run(page, clip)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.is_visible("#timeline-strip")
    payload = next(r.response().json() for r in requests if r.headers.get("accept") == "application/json")
    samples = payload["timeline"]["samples"]
    assert payload["timeline"]["fields"] == ["t", "score", "hit", "reason"] and len(samples) >= 14
    assert [r[0] for r in samples if r[3] == "camera_switch"] == [pytest.approx(5.0, abs=0.6)]
    [event] = payload["events"]

    strip = page.evaluate("""() => {
        const svg = document.getElementById("timeline-strip"), width = svg.viewBox.baseVal.width;
        const box = (el) => ({x: el.x.baseVal.value / width, w: el.width.baseVal.value / width});
        return {
            samples: Number(svg.dataset.samples),
            hits: svg.querySelectorAll(".tl-hit").length,
            events: Array.from(svg.querySelectorAll(".tl-event"), box),
            spans: Array.from(svg.querySelectorAll(".tl-span"), (el) => ({reason: el.dataset.reason, ...box(el)})),
            legend: Array.from(document.querySelectorAll("#timeline-legend li"), (li) => li.dataset.key),
            shown: svg.getBoundingClientRect().height,
            label: svg.getAttribute("aria-label"),
        };
    }""")
    last = max(samples[-1][0], payload["video"]["duration"])
    assert strip["samples"] == len(samples) and strip["shown"] > 40
    assert strip["hits"] == sum(r[2] for r in samples) >= 2
    [drawn] = strip["events"]
    assert drawn["x"] == pytest.approx(event["start"] / last, abs=0.01)
    assert drawn["x"] + drawn["w"] == pytest.approx(event["end"] / last, abs=0.01)
    [span] = strip["spans"]
    assert span["reason"] == "camera_switch" and span["x"] < 5.0 / last < span["x"] + span["w"]
    assert strip["legend"] == ["event", "hit", "still", "camera_switch"]
    assert "camera_switch" in strip["label"]
    assert "camera switched mode" in page.inner_text("#timeline-legend")
