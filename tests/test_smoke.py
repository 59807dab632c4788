"""The spine, end to end through the handler, for each request form."""

from conftest import FakeContext, body_bytes, body_json, gateway_event, header, invoke, multipart_event


def clip_field(path):
    return ("clip", (path.name, path.read_bytes(), "video/mp4"))


def test_clip_gives_jpeg_with_one_event(square_clip):
    response = invoke(multipart_event([clip_field(square_clip)]))
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "image/jpeg"
    assert header(response, "X-Motion-Events") == "1"
    assert body_bytes(response)[:3] == b"\xff\xd8\xff"


def test_json_events_match_the_motion(square_clip):
    payload = body_json(invoke(multipart_event([clip_field(square_clip), ("format", "json")])))
    [only] = payload["events"]
    assert abs(only["start"] - 2.0) <= 0.5 and abs(only["end"] - 4.0) <= 0.5
    assert only["label"] == f"00:00:0{int(only['peak'])}"
    assert payload["video"]["width"] == 320 and payload["video"]["height"] == 240
    assert payload["video"]["codec"] == "h264" and abs(payload["video"]["duration"] - 6.0) < 0.1
    assert payload["video"]["frames_analyzed"] >= 6 and payload["elapsed_ms"] >= 0


def test_accept_json_selects_json(square_clip):
    response = invoke(multipart_event([clip_field(square_clip)], headers={"accept": "application/json"}))
    assert header(response, "Content-Type") == "application/json"
    assert len(body_json(response)["events"]) == 1


def test_options_as_query_parameters(square_clip):
    response = invoke(multipart_event([clip_field(square_clip)], query={"format": "json", "step": "0.25"}))
    assert body_json(response)["video"]["frames_analyzed"] >= 20


def test_raw_video_body(square_clip):
    response = invoke(gateway_event(square_clip.read_bytes(), "video/mp4", query={"format": "json"}))
    assert response["statusCode"] == 200
    assert len(body_json(response)["events"]) == 1


def test_frames_in_order_with_interval(square_frames):
    fields = [("frame", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(square_frames)]
    payload = body_json(invoke(multipart_event(fields + [("format", "json")])))
    [only] = payload["events"]
    assert 1.5 <= only["start"] <= 3.0 and 3.0 <= only["end"] <= 4.5
    assert payload["video"]["codec"] == "stills" and payload["video"]["frames_analyzed"] == len(square_frames)


def test_frames_with_timestamps(square_frames):
    fields = [("frame", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(square_frames)]
    times = ",".join(str(10 * i) for i in range(len(square_frames)))
    payload = body_json(invoke(multipart_event(fields + [("format", "json"), ("timestamps", times)])))
    [only] = payload["events"]
    assert 15 <= only["start"] <= 30 and 30 <= only["end"] <= 45


def test_frames_as_jpeg_montage(square_frames):
    fields = [("frame", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(square_frames)]
    response = invoke(multipart_event(fields))
    assert response["statusCode"] == 200 and header(response, "Content-Type") == "image/jpeg"


def test_no_motion_is_still_a_sheet(square_frames):
    fields = [("frame", ("a.jpg", square_frames[0], "image/jpeg")), ("frame", ("b.jpg", square_frames[0], "image/jpeg"))]
    response = invoke(multipart_event(fields))
    assert response["statusCode"] == 200
    assert header(response, "X-Motion-Events") == "0"
    assert body_bytes(response)[:3] == b"\xff\xd8\xff"


def test_deadline_returns_partial_result(square_clip):
    context = FakeContext(remaining_ms=3000)  # nothing left after the response reserve
    payload = body_json(invoke(multipart_event([clip_field(square_clip), ("format", "json")]), context))
    assert payload["complete"] is False and "analyzed_until" in payload
