"""Hostile requests and hostile media: every one is refused with a JSON 4xx, quickly, in bounded memory.

The first half drives the handler (``conftest.invoke``) with events that API Gateway could really
deliver, mangled by hypothesis: broken base64, multipart without or with the wrong boundary, cut
short, with huge headers or thousands of parts, odd content types, filenames that are paths or not
UTF-8. Whatever arrives, the answer must be ``{"error": {"code", "message"}}`` with a 4xx status:
a 5xx means an exception got as far as the catch-all handler, which is a bug.

The second half sends media built to hurt: empty and truncated clips, headers claiming enormous
frames or hours of video, a PNG decompression bomb, a picture posing as a video, random bytes.
Each must be refused within a few seconds without the process's memory growing much, and no
``vimo-*`` work directory may be left behind.

Examples are generated deterministically (``derandomize``) so CI sees the same cases every run.
"""

from __future__ import annotations

import base64
import contextlib
import fractions
import io
import re
import resource
import struct
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from PIL import Image

from conftest import body_bytes, body_json, gateway_event, header, invoke

# "A few seconds" on a loaded 2-core CI machine; the refusals below typically take milliseconds.
WALL_LIMIT_S = 4.0
# How much the process's peak RSS may grow while handling one hostile upload (bombs would take GBs).
RSS_LIMIT_MB = 150
# Python-side allocations (tracemalloc) for one upload of at most a few MB.
PY_ALLOC_LIMIT_MB = 64

FUZZ = settings(max_examples=40, deadline=3000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_FEW = settings(FUZZ, max_examples=8, deadline=6000)

JUNK = b"this is not media " * 20  # what a part carries when its shape is the thing under test


# -- helpers ---------------------------------------------------------------------------------------


def assert_refused(response: dict, *statuses: int) -> dict:
    """A well-formed JSON error with a 4xx status (one of ``statuses`` if given); returns the error."""
    status = response["statusCode"]
    assert 400 <= status < 500, f"expected a 4xx refusal, got {status}: {body_bytes(response)[:300]!r}"
    if statuses:
        assert status in statuses, f"expected {statuses}, got {status}: {body_bytes(response)[:300]!r}"
    assert (header(response, "Content-Type") or "").startswith("application/json")
    payload = body_json(response)
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == {"code", "message"}, error
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
    assert isinstance(error["message"], str) and error["message"].strip()
    return error


def assert_answered(response: dict) -> None:
    """For media that may be partly usable (a cut-off clip): a JPEG, or a JSON refusal; never a crash."""
    if response["statusCode"] == 200:
        assert header(response, "Content-Type") == "image/jpeg"
        assert body_bytes(response)[:3] == b"\xff\xd8\xff"
    else:
        assert_refused(response)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@contextlib.contextmanager
def budget(wall_s: float = WALL_LIMIT_S, rss_mb: float = RSS_LIMIT_MB, py_mb: float | None = PY_ALLOC_LIMIT_MB):
    """Fails if the block takes longer than ``wall_s`` or grows peak RSS by more than ``rss_mb``.

    Peak RSS covers FFmpeg's and Pillow's native buffers too, which tracemalloc cannot see; it only
    ever rises, so a growth here is memory this block really touched. tracemalloc (when ``py_mb``)
    bounds the Python-side copies of the upload.
    """
    rss_before = peak_rss_mb()
    if py_mb is not None:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        py_peak = 0.0
        if py_mb is not None:
            py_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    assert elapsed < wall_s, f"took {elapsed:.2f} s (limit {wall_s} s)"
    assert peak_rss_mb() - rss_before < rss_mb, f"peak RSS grew by {peak_rss_mb() - rss_before:.0f} MB"
    if py_mb is not None:
        assert py_peak < py_mb, f"Python allocations peaked at {py_peak:.0f} MB"


def timed_invoke(event: dict, wall_s: float = WALL_LIMIT_S) -> dict:
    started = time.perf_counter()
    response = invoke(event)
    assert time.perf_counter() - started < wall_s, f"took {time.perf_counter() - started:.2f} s"
    return response


def multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"vimoBoundary7MA4YWxk", close: bool = True) -> bytes:
    """A multipart body from (raw header block, content) pairs, written by hand so it can be wrong."""
    out = b"".join(b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n" for headers, content in parts)
    return out + (b"--" + boundary + b"--\r\n" if close else b"")


def file_part(name: bytes = b"clip", filename: bytes = b"door.mp4", content: bytes = JUNK,
              content_type: bytes = b"video/mp4") -> tuple[bytes, bytes]:
    return (b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
            b"Content-Type: " + content_type, content)


def field_part(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"', value


def form_event(body: bytes, boundary: bytes | str = b"vimoBoundary7MA4YWxk", **kwargs) -> dict:
    if isinstance(boundary, bytes):
        boundary = boundary.decode("latin-1")
    return gateway_event(body, f"multipart/form-data; boundary={boundary}", **kwargs)


def vimo_dirs() -> set[str]:
    """The work directories vimo makes: ``TemporaryDirectory(prefix="vimo-")`` adds 8 random characters."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("vimo-*") if re.fullmatch(r"vimo-[a-z0-9_]{8}", p.name)}


@pytest.fixture(scope="module", autouse=True)
def no_work_dirs_left():
    """Every request works in a ``vimo-*`` temporary directory; none may outlive the tests."""
    invoke(form_event(multipart([file_part()])))  # import the handler and FFmpeg once, outside any budget
    before = vimo_dirs()
    yield
    left = vimo_dirs() - before
    assert not left, f"work directories left behind in {tempfile.gettempdir()}: {sorted(left)}"


@pytest.fixture(autouse=True)
def pillow_limits_on():
    """The bomb tests rely on Pillow's own guard as well as vimo's: make sure nobody switched it off."""
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 2 * 8192 * 8192


# -- the event: base64 ----------------------------------------------------------------------------


def _mangle_base64(encoded: str, how: str, at: int, char: str) -> str:
    at = at % (len(encoded) + 1)
    if how == "insert":
        return encoded[:at] + char + encoded[at:]
    if how == "cut":  # a length that is not a multiple of 4 can never be valid
        cut = encoded.rstrip("=")
        return cut[: max(1, len(cut) - (len(cut) % 4 or 4) + 1)] if len(cut) > 1 else "A"
    if how == "pad_inside":
        return encoded[:at] + "=" + encoded[at:] + "A"
    return encoded.replace("+", "-").replace("/", "_") + "-_"  # URL-safe alphabet, not what API Gateway sends


@FUZZ
@given(data=st.binary(min_size=1, max_size=2000),
       how=st.sampled_from(["insert", "cut", "pad_inside", "urlsafe"]),
       at=st.integers(0, 4000),
       char=st.sampled_from(list("!@#$%^&*()[] \t\n\r.,;:?\\\"'`~é€\x00\x7f")),
       content_type=st.sampled_from(["video/mp4", "image/jpeg", "application/octet-stream",
                                     "multipart/form-data; boundary=x"]))
def test_broken_base64_is_refused(data, how, at, char, content_type):
    event = gateway_event(data, content_type)
    event["body"] = _mangle_base64(event["body"], how, at, char)
    try:
        base64.b64decode(event["body"], validate=True)
    except ValueError:
        pass
    else:  # the mangling happened to keep it valid (rare): then it is simply junk media, not this test's case
        assume(False)
    error = assert_refused(timed_invoke(event), 400)
    assert error["code"] in ("bad_base64", "empty_body")


@FUZZ
@given(body=st.text(max_size=3000), content_type=st.sampled_from(["video/mp4", "image/png", "multipart/form-data"]))
def test_any_text_marked_base64_is_refused(body, content_type):
    """API Gateway's own encoding is always valid, but the flag and the body can disagree."""
    event = gateway_event(b"x", content_type)
    event["body"] = body
    assert_refused(timed_invoke(event))


def test_text_body_with_lone_surrogates_is_refused():
    """A text (non-base64) body is a Python str; one holding lone surrogates must not crash encoding."""
    event = gateway_event(b"x", "video/mp4", base64_encoded=False)
    event["body"] = "\ud800\udfff\udc80 not a clip"
    assert_refused(timed_invoke(event))


@FUZZ
@given(body=st.text(max_size=2000),
       content_type=st.sampled_from(["video/mp4", "image/jpeg", "multipart/form-data; boundary=B",
                                     "text/plain", "application/json"]))
def test_text_bodies_are_refused(body, content_type):
    event = gateway_event(body.encode("utf-8"), content_type, base64_encoded=False)
    assert_refused(timed_invoke(event))


# -- the event: multipart -------------------------------------------------------------------------

OPTION_VALUES = {b"format": [b"json", b"jpeg", b"gif"], b"step": [b"0.5", b"nan", b"-1", b"1e309"],
                 b"sensitivity": [b"0.9", b"2", b"inf", b"\xff\xfe"], b"columns": [b"3", b"9" * 5000],
                 b"max_tiles": [b"24", b"0x10"], b"sensitivty": [b"0.5"], b"delivery": [b"s3", b"ftp"],
                 b"timestamps": [b"0,1,2", b"2,1", b"nan"], b"": [b"x"]}


@st.composite
def forms(draw) -> list[tuple[bytes, bytes]]:
    """A plausible form: a clip or some frames (all junk bytes), and some options."""
    parts = []
    if draw(st.booleans()):
        parts.append(file_part(content=draw(st.sampled_from([JUNK, b"", b"\x00" * 64]))))
    else:
        for i in range(draw(st.integers(0, 4))):
            parts.append(file_part(b"frame", b"f%d.jpg" % i, JUNK, b"image/jpeg"))
    for name in draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=4)):
        parts.append(field_part(name, draw(st.sampled_from(OPTION_VALUES[name]))))
    return draw(st.permutations(parts))


MANGLES = ["none", "no_boundary_param", "wrong_boundary", "no_closing", "truncate", "huge_header", "lf_only",
           "drop_crlfcrlf", "nul_in_headers", "duplicate_clip", "boundary_in_content", "garbage_prefix",
           "quoted_boundary", "unknown_file_part", "no_disposition"]


@FUZZ
@given(parts=forms(), mangle=st.sampled_from(MANGLES), cut=st.floats(0, 1),
       boundary=st.sampled_from([b"vimoBoundary7MA4YWxk", b"----WebKitFormBoundaryAbC123", b"x", b"a'()+_,-./:=?"]))
def test_malformed_multipart_is_refused(parts, mangle, cut, boundary):
    content_type = f"multipart/form-data; boundary={boundary.decode()}"
    if mangle == "huge_header":
        parts = [(parts[0][0] + b"\r\nX-Padding: " + b"p" * 1_000_000, parts[0][1])] if parts else [
            (b"X-Padding: " + b"p" * 1_000_000, JUNK)]
    elif mangle == "nul_in_headers":
        parts = [(h.replace(b"form-data", b"form-\x00data\x00"), c) for h, c in parts] or [file_part(b"cl\x00ip")]
    elif mangle == "duplicate_clip":
        parts = parts + [file_part(), file_part()]
    elif mangle == "boundary_in_content":
        parts = [(h, c + b"\r\n--" + boundary + b"\r\n") for h, c in parts] or [file_part(content=b"--" + boundary)]
    elif mangle == "unknown_file_part":
        parts = parts + [file_part(b"../../etc/passwd", b"passwd", JUNK, b"text/plain")]
    elif mangle == "no_disposition":
        parts = parts + [(b"Content-Type: video/mp4", JUNK)]
    body = multipart(parts, boundary, close=mangle != "no_closing")
    if mangle == "no_boundary_param":
        content_type = "multipart/form-data"
    elif mangle == "wrong_boundary":
        content_type = "multipart/form-data; boundary=someOtherBoundary"
    elif mangle == "quoted_boundary":
        content_type = f'multipart/form-data; boundary="{boundary.decode()}"; charset=utf-8'
    elif mangle == "truncate":
        body = body[: int(len(body) * cut)]
    elif mangle == "lf_only":
        body = body.replace(b"\r\n", b"\n")
    elif mangle == "drop_crlfcrlf":
        body = body.replace(b"\r\n\r\n", b"\r\n", 1)
    elif mangle == "garbage_prefix":
        body = b"\xff\xfe\x00garbage\r\n" + body
    assert_refused(timed_invoke(gateway_event(body, content_type)))


@FUZZ
@given(content_type=st.one_of(
    st.sampled_from(["", " ", ";", "multipart/form-data", "multipart/form-data;", "multipart/form-data; boundary=",
                     'multipart/form-data; boundary=""', "multipart/mixed; boundary=B", "MULTIPART/FORM-DATA; BOUNDARY=B",
                     "multipart/form-data; boundary*=utf-8''%ff%fe", "multipart/form-data; boundary=B; boundary=C",
                     "text/html", "application/json", "application/x-www-form-urlencoded", "video", "video/",
                     "image/svg+xml", "image/png\x00video/mp4", "video/mp4; codecs=\"avc1\"\r\nX-Evil: 1",
                     "*/*", "multipart/form-data; boundary=" + "B" * 5000]),
    st.text(max_size=200)),
    header_name=st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE", "Content-type"]),
    accept=st.sampled_from([None, "*/*", "application/json", "image/jpeg", "\x00", "a" * 3000]))
def test_wrong_or_missing_content_type_is_refused(content_type, header_name, accept):
    body = multipart([file_part(), field_part(b"step", b"1")], b"B")
    headers = {header_name: content_type} if content_type else {}
    if accept is not None:
        headers["Accept"] = accept
    assert_refused(timed_invoke(gateway_event(body, headers=headers)))


@FUZZ
@given(filename=st.one_of(
    st.sampled_from([b"../../etc/passwd", b"..\\..\\windows\\win.ini", b"/etc/shadow", b"clip\x00.mp4", b"\x00",
                     b"\xff\xfe\xfd.mp4", b"caf\xe9.mp4", b"a" * 10_000, b"CON", b"\r", b"%00%2e%2e%2f", b"\x1b[31mred",
                     b"\"; name=\"frame", b"\xe2\x80\xae4pm.exe", b"", b"."]),
    st.binary(max_size=300)),
    part_name=st.sampled_from([b"clip", b"frame"]), encoded=st.booleans())
def test_hostile_filenames_are_refused_and_never_echoed_raw(filename, part_name, encoded):
    if encoded:  # the RFC 2231 form browsers use for non-ASCII names
        from urllib.parse import quote_from_bytes

        disposition = b'Content-Disposition: form-data; name="' + part_name + b"\"; filename*=UTF-8''" + \
            quote_from_bytes(filename).encode()
    else:
        disposition = b'Content-Disposition: form-data; name="' + part_name + b'"; filename="' + \
            filename.replace(b"\r", b"").replace(b"\n", b"") + b'"'
    content_type = b"video/mp4" if part_name == b"clip" else b"image/jpeg"
    body = multipart([(disposition + b"\r\nContent-Type: " + content_type, JUNK)])
    error = assert_refused(timed_invoke(form_event(body)))
    # The name is only ever shown, cleaned: no directories, no control characters, at most 80 chars.
    message = error["message"]
    assert "\x00" not in message and "\x1b" not in message and "\r" not in message
    assert "etc/passwd" not in message and "windows\\" not in message
    assert len(message) < 400


@FUZZ_FEW
@given(count=st.integers(1001, 4000), kind=st.sampled_from(["frame", "option", "nameless", "mixed"]))
def test_thousands_of_tiny_parts_are_refused(count, kind):
    parts = {
        "frame": lambda i: file_part(b"frame", b"%d" % i, b"x", b"image/jpeg"),
        "option": lambda i: field_part(b"step", b"1"),
        "nameless": lambda i: (b"Content-Disposition: form-data", b"x"),
        "mixed": lambda i: [file_part(b"frame", b"%d" % i, b"x", b"image/jpeg"), field_part(b"o%d" % i, b"1")][i % 2],
    }[kind]
    body = multipart([parts(i) for i in range(count)])
    with budget(py_mb=None):
        assert_refused(invoke(form_event(body)))


def test_a_few_frames_too_many_are_refused_before_decoding():
    """1001 real JPEGs would be a lot of decoding; the count alone refuses them."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buffer, "JPEG")
    body = multipart([file_part(b"frame", b"%d.jpg" % i, buffer.getvalue(), b"image/jpeg") for i in range(1001)])
    with budget():
        error = assert_refused(invoke(form_event(body)), 413)
    assert "1000" in error["message"]


def test_an_upload_full_of_tiny_parts_is_refused_quickly():
    part = b"--B\r\nContent-Disposition: form-data; name=frame; filename=f\r\n\r\nx\r\n"
    body = part * (1_500_000 // len(part)) + b"--B--\r\n"  # 22,000 parts; the fix makes this milliseconds
    with budget(wall_s=2.0, py_mb=None):
        assert_refused(invoke(form_event(body, b"B")), 413)


@FUZZ
@given(query=st.dictionaries(
    st.sampled_from(["step", "sensitivity", "columns", "max_tiles", "tile_width", "cooldown", "interval",
                     "timestamps", "format", "delivery", "unknown", "", "step\x00", "../x"]),
    st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "9" * 5000, "", " ", "0x1f", "1_0", "½", "٣"]),
              st.text(max_size=40)),
    min_size=1, max_size=4))
def test_hostile_options_are_refused(query):
    event = form_event(multipart([file_part()]), query=query)
    assert_refused(timed_invoke(event))


# -- hostile media ---------------------------------------------------------------------------------


def clip_event(data: bytes, name: str = "clip.mp4", content_type: str = "video/mp4") -> dict:
    return form_event(multipart([file_part(b"clip", name.encode(), data, content_type.encode())]))


def frames_event(*frames: bytes) -> dict:
    return form_event(multipart([file_part(b"frame", b"%d.png" % i, f, b"image/png") for i, f in enumerate(frames)]))


def encode_clip(path: Path, container: str = "mp4", frames: int = 50, size=(160, 120), codec: str = "libx264",
                options: dict | None = None) -> bytes:
    """A short real clip: a bright block moves across a textured background."""
    rng = np.random.default_rng(5)
    background = (rng.random((size[1], size[0], 3)) * 60 + 100).astype(np.uint8)
    with av.open(str(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            picture = background.copy()
            x = i * (size[0] - 40) // frames
            picture[30:70, x:x + 40] = 240
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def long_clip(container: str, hours: float, frames: int = 8) -> bytes:
    """A tiny file whose frames are hours apart: its header (or its timestamps) claims ``hours`` of video."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(i * hours * 3_600_000 / (frames - 1)), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of ``width`` x ``height`` black pixels: a few kB that decode to GBs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def y4m(width: int, height: int, payload: bytes = b"\x80" * 4096) -> bytes:
    """A YUV4MPEG2 stream whose text header claims ``width`` x ``height`` frames."""
    return b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\nFRAME\n" % (width, height) + payload


class Clips(dict):
    """Real clips by kind; a short repr keeps hypothesis's failure reports readable."""

    def __repr__(self) -> str:
        return f"<clips {', '.join(f'{k}: {len(v)} B' for k, v in self.items())}>"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    folder = tmp_path_factory.mktemp("hostile")
    return Clips({
        "mp4": encode_clip(folder / "a.mp4"),  # moov at the end: any cut loses the index
        "faststart": encode_clip(folder / "b.mp4", options={"movflags": "faststart"}),  # index first
        "mkv": encode_clip(folder / "c.mkv", container="matroska"),
    })


def png(width: int = 60, height: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((height, width, 3)) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_zero_byte_clip_is_refused():
    with budget():
        assert assert_refused(invoke(clip_event(b"")), 400)["code"] == "empty_part"
        assert assert_refused(invoke(gateway_event(b"", "video/mp4")), 400)["code"] == "empty_body"
        assert assert_refused(invoke(frames_event(b"")), 400)["code"] == "empty_part"


@FUZZ_FEW
@given(fraction=st.floats(0.0005, 0.97))
def test_truncated_mp4_without_its_index_is_refused(clips, fraction):
    data = clips["mp4"]
    with budget(py_mb=None):
        error = assert_refused(invoke(clip_event(data[: max(1, int(len(data) * fraction))])), 415)
    assert error["code"] in ("not_a_video", "no_video_stream")


@FUZZ_FEW
@given(kind=st.sampled_from(["faststart", "mkv"]), fraction=st.floats(0.0005, 0.97))
def test_truncated_clip_is_refused_or_analysed_as_far_as_it_goes(clips, kind, fraction):
    data = clips[kind]
    with budget(py_mb=None):
        assert_answered(invoke(clip_event(data[: max(1, int(len(data) * fraction))])))


@FUZZ_FEW
@given(kind=st.sampled_from(["mp4", "faststart", "mkv"]), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                         min_size=1, max_size=30))
def test_corrupted_clip_is_refused_or_analysed(clips, kind, flips):
    data = bytearray(clips[kind])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    with budget(py_mb=None):
        assert_answered(invoke(clip_event(bytes(data))))


@pytest.mark.parametrize("width,height,status", [(30000, 30000, 415), (9000, 9000, 413), (100000, 1000, 413),
                                                 (65535, 65535, 415)])
def test_header_claiming_enormous_frames_is_refused(width, height, status):
    with budget():
        error = assert_refused(invoke(clip_event(y4m(width, height), "huge.y4m")), status)
    if status == 413:
        assert f"{width}x{height}" in error["message"]


@pytest.mark.parametrize("container", ["matroska", "mp4", "mov", "mpegts"])
def test_clip_claiming_hours_of_frames_is_refused(container):
    data = long_clip(container, hours=10)
    assert len(data) < 20_000
    with budget():
        error = assert_refused(invoke(clip_event(data)), 413)
    assert "hours" in error["message"]


@pytest.mark.parametrize("side", [10_000, 30_000])
def test_image_decompression_bomb_is_refused(side, recwarn):
    bomb = png_bomb(side, side)
    assert len(bomb) < 150_000  # a few kB that would decode to side² pixels
    with budget():
        assert_refused(invoke(frames_event(bomb)), 413)
        assert_refused(invoke(frames_event(png(), bomb)), 413)  # the bomb as a later frame
        assert_refused(invoke(gateway_event(bomb, "image/png")), 413)  # as a raw body


@pytest.mark.parametrize("side", [10_000, 30_000])
def test_image_bomb_declared_as_a_video_is_refused(side):
    with budget():
        assert_refused(invoke(clip_event(png_bomb(side, side))), 413, 415)


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_png_declared_as_a_video_is_refused(how):
    event = clip_event(png()) if how == "multipart" else gateway_event(png(), "video/mp4")
    with budget():
        assert_refused(invoke(event), 415)


@FUZZ
@given(data=st.binary(min_size=1, max_size=64 * 1024),
       magic=st.sampled_from([b"", b"\x1aE\xdf\xa3", b"\x00\x00\x00\x18ftypmp42", b"RIFF\x00\x00\x00\x00AVI LIST",
                              b"\x47\x40\x00\x10", b"\x00\x00\x01\xba", b"OggS", b"FLV\x01", b"GIF89a", b"YUV4MPEG2 ",
                              b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]))
def test_random_bytes_as_video_are_refused(data, magic):
    with budget(py_mb=None):
        assert_refused(invoke(clip_event(magic + data)))


@FUZZ
@given(data=st.binary(min_size=1, max_size=16 * 1024),
       magic=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a",
                              b"BM", b"II*\x00"]))
def test_random_bytes_as_frames_are_refused(data, magic):
    with budget(py_mb=None):
        assert_refused(invoke(frames_event(png(), magic + data)), 415)


def test_other_image_kinds_are_refused_as_frames():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "GIF")
    with budget():
        assert assert_refused(invoke(frames_event(buffer.getvalue())), 415)["code"] == "unsupported_image"
