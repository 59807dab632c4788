"""The spine, end to end through the handler, on a clip made here."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import body_bytes, body_json, header, invoke, multipart_event


@pytest.fixture(scope="module")
def moving_square(tmp_path_factory):
    """6 s of 320x240 noise-free texture; a dark square crosses it from 2 s to 4 s."""
    path = tmp_path_factory.mktemp("clips") / "square.mp4"
    rng = np.random.default_rng(1)
    background = (rng.random((240, 320, 3)) * 60 + 100).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(150):
            frame = background.copy()
            t = i / 25
            if 2 <= t < 4:
                x = int((t - 2) / 2 * 260)
                frame[80:160, x:x + 60] = 20
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_clip_gives_jpeg_with_one_event(moving_square):
    event = multipart_event([("clip", ("square.mp4", moving_square.read_bytes(), "video/mp4"))])
    response = invoke(event)
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "image/jpeg"
    assert header(response, "X-Motion-Events") == "1"
    assert body_bytes(response)[:3] == b"\xff\xd8\xff"


def test_json_events_match_the_motion(moving_square):
    event = multipart_event([("clip", ("square.mp4", moving_square.read_bytes(), "video/mp4")), ("format", "json")])
    payload = body_json(invoke(event))
    [only] = payload["events"]
    assert abs(only["start"] - 2.0) <= 0.5 and abs(only["end"] - 4.0) <= 0.5
    assert payload["video"]["width"] == 320 and payload["video"]["codec"] == "h264"
