"""Every refusal is JSON with the right status and a code a client can act on."""

import base64
import os
import tempfile

import pytest

from conftest import body_json, gateway_event, header, invoke, multipart_event


def refused(response, status, code):
    assert response["statusCode"] == status, response.get("body")
    assert header(response, "Content-Type") == "application/json"
    error = body_json(response)["error"]
    assert error["code"] == code and error["message"]
    return error["message"]


def clip(path):
    return ("clip", ("door.mp4", path.read_bytes(), "video/mp4"))


def test_malformed_base64():
    event = gateway_event(b"x", "video/mp4")
    event["body"] = "not base64!!"
    refused(invoke(event), 400, "bad_base64")


def test_empty_body():
    refused(invoke(gateway_event(b"", "video/mp4")), 400, "empty_body")


def test_multipart_without_boundary():
    refused(invoke(gateway_event(b"--x\r\n\r\n--x--", "multipart/form-data")), 400, "bad_multipart")


def test_truncated_multipart(square_clip):
    event = multipart_event([clip(square_clip)])
    body = base64.b64decode(event["body"])
    event["body"] = base64.b64encode(body[: len(body) // 2]).decode()
    refused(invoke(event), 400, "bad_multipart")


def test_missing_part():
    refused(invoke(multipart_event([("format", "json")])), 400, "missing_part")


@pytest.mark.parametrize("field, value", [("step", "fast"), ("step", "0"), ("columns", "2.5"), ("format", "gif"),
                                          ("sensitivity", "7"), ("timestamps", "1,x"), ("step", "nan")])
def test_bad_option_value(square_clip, field, value):
    message = refused(invoke(multipart_event([clip(square_clip), (field, value)])), 400, "bad_option")
    assert field in message


def test_unknown_option_is_an_error_not_ignored(square_clip):
    message = refused(invoke(multipart_event([clip(square_clip), ("sensitivty", "0.9")])), 400, "unknown_option")
    assert "sensitivity" in message  # the list of known options helps spot the typo


def test_unknown_query_option(square_clip):
    refused(invoke(multipart_event([clip(square_clip)], query={"colums": "3"})), 400, "unknown_option")


def test_unsupported_content_type():
    refused(invoke(gateway_event(b"hello", "text/plain")), 415, "unsupported_media_type")


def test_missing_content_type():
    refused(invoke(gateway_event(b"hello")), 415, "missing_content_type")


def test_bytes_that_are_not_video():
    refused(invoke(gateway_event(os.urandom(50_000), "video/mp4")), 415, "not_a_video")


def test_bytes_that_are_not_an_image():
    event = multipart_event([("frame", ("a.jpg", b"\xff\xd8 not really", "image/jpeg"))])
    refused(invoke(event), 415, "not_an_image")


def test_upload_over_limit_is_413():
    event = gateway_event(b"\0" * 4_500_000, "video/mp4")
    assert "/uploads" in refused(invoke(event), 413, "too_large")


def test_header_names_are_case_insensitive(square_clip):
    event = multipart_event([clip(square_clip), ("format", "json")])
    content_type = event["headers"].pop("Content-Type")
    event["headers"]["CONTENT-type"] = content_type
    event["multiValueHeaders"] = None
    assert invoke(event)["statusCode"] == 200


def test_timestamps_must_match_frames(square_frames):
    fields = [("frame", ("a.jpg", square_frames[0], "image/jpeg")), ("timestamps", "0,1,2")]
    refused(invoke(multipart_event(fields)), 400, "bad_option")


def test_not_found_and_method_not_allowed():
    refused(invoke(gateway_event(None, method="GET", path="/nowhere")), 404, "not_found")
    refused(invoke(gateway_event(None, method="DELETE", path="/motion")), 405, "method_not_allowed")


def test_no_temporary_files_left_behind(square_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a temp root of our own: other runs can't interfere
    assert invoke(multipart_event([clip(square_clip)]))["statusCode"] == 200
    assert invoke(gateway_event(os.urandom(1000), "video/mp4"))["statusCode"] == 415
    assert invoke(gateway_event(square_clip.read_bytes()[:5000], "video/mp4"))["statusCode"] == 415
    assert list(tmp_path.iterdir()) == []
