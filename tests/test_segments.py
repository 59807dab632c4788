"""Long clips in segments: the plan, the merge across boundaries, the local pool and the Lambda fan-out.

The merge is checked two ways: against the serial event builder on random hit patterns (the same
EventBuilder the analysis uses, fed what each segment would see), and on real clips analysed in
segments. The fan-out's Invoke requests go through botocore's Stubber, which validates them against
Lambda's API model, and its answers are real segment results.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import threading
import time

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from hypothesis import given, settings as hypothesis_settings, strategies as st
from PIL import Image

from conftest import FakeContext, serving_files, write_square_clip
from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from vimo import runners, segments
from vimo.analysis import analyze_clip
from vimo.config import Options, Settings
from vimo.errors import ApiError
from vimo.events import Event, EventBuilder
from vimo.motion import Motion

STEP = 0.5


# -- plan ------------------------------------------------------------------------------------------------


def test_plan_covers_the_clip_on_the_sampling_grid():
    plan = segments.plan_segments(600.0, 100.0, STEP)
    assert len(plan) == 6 and plan[0][0] == 0.0 and plan[-1][1] == math.inf
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))
    assert all((start / STEP).is_integer() for start, _ in plan)
    plan = segments.plan_segments(10.0, 3.0, STEP)  # 2.5 s apart: on the grid
    assert [s for s, _ in plan] == [0.0, 2.5, 5.0, 7.5]
    assert segments.plan_segments(7.3, 3.0, 1.0) == [(0.0, 2.0), (2.0, 5.0), (5.0, math.inf)]


@pytest.mark.parametrize("duration", [0.0, -1.0, math.inf, math.nan, 5.0])
def test_short_or_unknown_clips_are_one_segment(duration):
    assert segments.plan_segments(duration, 10.0, STEP) == [(0.0, math.inf)]


def test_segment_length_fills_the_slots_but_not_below_the_shortest():
    assert segments.segment_length(3600, 10, 60) == 360
    assert segments.segment_length(300, 10, 60) == 60


# -- merge, against the serial builder ----------------------------------------------------------------


class FakeSample:
    def __init__(self, time: float):
        self.time = time

    def release(self):
        pass

    def picture(self, width: int) -> Image.Image:
        return Image.new("RGB", (4, 4), (int(self.time * 10) % 256, 0, 0))


def build(samples: list[tuple[float, float, bool]], cooldown: float) -> list[Event]:
    builder = EventBuilder(cooldown, 80)
    for t, score, hit in samples:
        builder.feed(Motion(t, score, hit, FakeSample(t)))
    return builder.close()


def segmented(samples, cooldown: float, plan) -> list[list[Event]]:
    """What each segment's analysis sees: its samples from ``start`` to ``end``; the first one only
    primes the detector (no previous frame, so never a hit)."""
    results = []
    for start, end in plan:
        mine = [(t, s, h) for t, s, h in samples if start - 1e-9 <= t <= end + 1e-9]
        if mine and abs(mine[0][0] - start) < 1e-9 and start > 0:
            mine[0] = (mine[0][0], 0.0, False)
        results.append(build(mine, cooldown))
    return results


def assert_same_events(merged: list[Event], serial: list[Event], step: float = STEP):
    """Exactly the serial events, except that an event's end may be half a step earlier when its
    segment ended on a hit (no still sample after it to put the end halfway to)."""
    assert len(merged) == len(serial), (merged, serial)
    for m, s in zip(merged, serial):
        assert m.start == pytest.approx(s.start, abs=1e-6)
        assert m.peak == pytest.approx(s.peak) and m.score == s.score
        assert abs(m.end - s.end) <= step / 2 + 1e-6


def assert_similar_events(merged: list[Event], serial: list[Event], step: float):
    """The same events within the sampling step (real clips: a segment's first sample has no frame
    before it to compare with, so a hit right after a boundary can be seen one sample late)."""
    assert len(merged) == len(serial), (merged, serial)
    frame = 0.05  # samples land on the first frame at or after each grid time
    for m, s in zip(merged, serial):
        assert abs(m.start - s.start) <= step + frame and abs(m.end - s.end) <= step + frame, (m, s)
        assert m.start <= m.peak <= m.end and m.score == pytest.approx(s.score, rel=0.25)


@hypothesis_settings(max_examples=300, deadline=None)
@given(hits=st.lists(st.tuples(st.booleans(), st.integers(1, 100)), min_size=1, max_size=120),
       cooldown=st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.2, 2.0, 2.4, 3.7]),
       cuts=st.lists(st.integers(1, 119), max_size=6))
def test_merge_equals_the_serial_run(hits, cooldown, cuts):
    samples = [(i * STEP, score / 100 if hit else 0.0, hit and i > 0) for i, (hit, score) in enumerate(hits)]
    bounds = sorted({c * STEP for c in cuts if c < len(samples)})
    plan = list(zip([0.0, *bounds], [*bounds, math.inf]))
    assert_same_events(segments.merge(segmented(samples, cooldown, plan), cooldown, STEP), build(samples, cooldown))


def event(start, end, peak, score, name=None) -> Event:
    return Event(start, end, peak, score, tile=Image.new("RGB", (2, 2)) if name is None else name)


def test_pieces_of_one_event_are_joined_with_the_stronger_peak():
    before = [event(1, 2, 1.5, 0.1), event(8.25, 10.0, 9.5, 0.2, "weak")]
    after = [event(10.25, 12.75, 11.0, 0.6, "strong"), event(20, 21, 20.5, 0.1)]
    merged = segments.merge([before, after], cooldown=2.0, step=STEP)
    assert [(e.start, e.end, e.peak, e.score, e.tile) for e in merged[1:2]] == [(8.25, 12.75, 11.0, 0.6, "strong")]
    assert len(merged) == 3


def test_an_event_spanning_whole_segments_is_one_event():
    pieces = [[event(5.25, 10.0, 6, 0.1)], [event(10.25, 20.0, 15, 0.9, "peak")], [event(20.25, 22.25, 21, 0.3)]]
    merged = segments.merge(pieces, cooldown=2.0, step=STEP)
    assert [(e.start, e.end, e.peak, e.tile) for e in merged] == [(5.25, 22.25, 15, "peak")]


def test_events_far_apart_or_inside_one_segment_are_not_joined():
    same_segment = [event(1, 2, 1.5, 0.1), event(2.5, 3, 2.75, 0.1)]  # the builder already kept these apart
    far = [event(15.0, 16.0, 15.5, 0.1)]  # 3.25 s after the boundary piece at 11.75: beyond the 2 s cooldown
    merged = segments.merge([same_segment + [event(9.0, 11.75, 10, 0.1)], far], cooldown=2.0, step=STEP)
    assert len(merged) == 4


def test_nothing_is_joined_across_a_missing_segment():
    merged = segments.merge([[event(8, 10, 9, 0.1)], None, [event(10.25, 11, 10.5, 0.1)]], cooldown=2.0, step=STEP)
    assert len(merged) == 2


def test_an_empty_segment_between_pieces_still_joins():
    merged = segments.merge([[event(8, 10.0, 9, 0.1)], [], [event(10.25, 11, 10.5, 0.1)]], cooldown=2.0, step=STEP)
    assert len(merged) == 1


# -- merge, on real clips ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """12 s, 160x120, a keyframe a second: a square crosses from 2.2 s to 5.2 s and again from 8.5 s to 10.5 s."""
    return write_square_clip(tmp_path_factory.mktemp("clips") / "two.mp4", seconds=12.0,
                             moving=((2.2, 5.2), (8.5, 10.5)), size=(160, 120), gop=25)


@pytest.mark.parametrize("cuts", [[3.5], [3.0, 4.0, 9.0], [2.5, 5.0, 7.5, 10.0]])
def test_real_segments_merge_to_the_serial_events(long_clip, cuts):
    options, settings = Options(), Settings()
    serial = analyze_clip(long_clip, options, settings)
    assert len(serial.events) == 2
    plan = list(zip([0.0, *cuts], [*cuts, math.inf]))
    results = [analyze_clip(long_clip, options, settings, start=s, end=e) for s, e in plan]
    combined = segments.combine(results, plan, options, 0)
    assert_similar_events(combined.events, serial.events, options.step)
    assert combined.complete and combined.video.duration == pytest.approx(serial.video.duration, abs=0.1)


def test_local_pool_gives_the_serial_events(long_clip):
    options = Options()
    settings = Settings(segment_seconds=2.0, workers=2, fanout_threshold=5.0)
    serial = analyze_clip(long_clip, options, settings)
    assert len(serial.events) == 2
    result = runners.analyze(long_clip, options, settings)  # 12 s over 2 workers: 6 segments of 2 s
    assert_similar_events(result.events, serial.events, options.step)
    assert result.complete
    assert all(e.tile is not None for e in result.events)


def test_short_clips_are_not_cut(long_clip, monkeypatch):
    """...and are opened once: reading the length that decides it is the analysis's own open
    (for a clip in S3, that is one fewer round of HTTP requests)."""
    from vimo.frames import Clip

    opens = []
    real_open = Clip._open
    monkeypatch.setattr(Clip, "_open", lambda self: opens.append(self) or real_open(self))
    monkeypatch.setattr(runners, "run_local", lambda *a, **k: pytest.fail("a short clip was cut"))
    result = runners.analyze(long_clip, Options(), Settings(workers=2, fanout_threshold=60.0))
    assert len(result.events) == 2
    assert len(opens) == 1


# -- Lambda fan-out ------------------------------------------------------------------------------------------

ARN = FakeContext.invoked_function_arn
SOURCE = {"s3_key": "uploads/2024/01/01/" + "0" * 32}


def lambda_client():
    import boto3

    return boto3.session.Session().client("lambda", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                                          aws_secret_access_key="secret")


def invoke_response(payload: dict, function_error: str | None = None) -> dict:
    body = json.dumps(payload).encode()
    response = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    return response


class Router:
    """One Stubber-checked client per segment, chosen by the segment's start: invocations run in
    parallel threads, so they reach the client in no fixed order."""

    def __init__(self, answers: dict[float, dict], delays: dict[float, float] | None = None):
        self.stubs, self.requests, self.delays = {}, [], delays or {}
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        for start, response in answers.items():
            client = lambda_client()
            stub = Stubber(client)
            stub.add_response("invoke", response, {"FunctionName": ARN, "InvocationType": "RequestResponse",
                                                   "Payload": ANY})
            stub.activate()
            self.stubs[start] = (client, stub)

    def invoke(self, **params):
        request = json.loads(params["Payload"])
        start = request["vimo_segment"]["start"]
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delays.get(start, 0.05))
            return self.stubs[start][0].invoke(**params)
        finally:
            with self.lock:
                self.in_flight -= 1

    def assert_all_used(self):
        for _, stub in self.stubs.values():
            stub.assert_no_pending_responses()


def real_answers(clip, plan, options) -> dict[float, dict]:
    """What each worker's run_segment would answer: the real analysis of its segment, as JSON."""
    return {start: invoke_response(json.loads(json.dumps(segments.result_to_dict(
        analyze_clip(clip, options, Settings(), start=start, end=end), options.max_tiles))))
        for start, end in plan}


def test_fan_out_invokes_itself_per_segment_and_merges(long_clip):
    options = Options(max_tiles=10)
    settings = Settings(segment_seconds=2.0, fanout_concurrency=3)
    duration = 12.0
    plan = segments.plan_segments(duration, segments.segment_length(duration, 3, 2.0), options.step)
    assert plan == [(0.0, 4.0), (4.0, 8.0), (8.0, math.inf)]
    router = Router(real_answers(long_clip, plan, options))

    result = runners.run_lambda(SOURCE, options, settings, duration, FakeContext(20_000), client=router)

    router.assert_all_used()
    assert sorted(r["vimo_segment"]["start"] for r in router.requests) == [0.0, 4.0, 8.0]
    for request in router.requests:
        job = request["vimo_segment"]
        assert set(request) == {"vimo_segment"} and job["source"] == SOURCE
        assert segments.options_from_dict(job["options"]) == options
        assert job["end"] == dict(plan)[job["start"]] or (job["end"] is None and job["start"] == 8.0)
        assert 0 < job["budget_ms"] <= 20_000 - runners.RESPONSE_RESERVE * 1000
    assert router.most_in_flight <= 3
    serial = analyze_clip(long_clip, options, Settings())
    assert len(serial.events) == 2
    assert_similar_events(result.events, serial.events, options.step)  # the first crossing straddles 4.0
    assert result.complete and all(isinstance(e.tile, Image.Image) for e in result.events)


def test_fan_out_respects_the_concurrency_limit():
    options = Options()
    settings = Settings(segment_seconds=1.0, fanout_concurrency=2)
    plan = segments.plan_segments(12.0, 6.0, options.step)
    answer = {"events": [], "video": {"duration": 12.0, "fps": 25.0, "width": 160, "height": 120, "codec": "h264",
                                      "frames_analyzed": 10}, "elapsed_ms": 5, "complete": True, "analyzed_until": None}
    # segment_length(12, 2 slots, 1 s) = 6 s: two segments; slow them so both overlap
    router = Router({start: invoke_response(answer) for start, _ in plan}, delays={0.0: 0.3, 6.0: 0.3})
    result = runners.run_lambda(SOURCE, options, settings, 12.0, FakeContext(20_000), client=router)
    assert router.most_in_flight == 2 and result.video.frames_analyzed == 20 and result.events == []


def test_fan_out_stops_at_its_deadline_and_says_how_far_it_got(long_clip):
    options = Options()
    plan = segments.plan_segments(12.0, 4.0, options.step)
    answers = real_answers(long_clip, plan, options)
    router = Router(answers, delays={8.0: 5.0})  # the last segment does not answer in time
    started = time.monotonic()
    result = runners.run_lambda(SOURCE, options, Settings(segment_seconds=4.0, fanout_concurrency=3), 12.0,
                                 FakeContext(int((runners.RESPONSE_RESERVE + 1.0) * 1000)), client=router)
    assert time.monotonic() - started < 3.5
    assert not result.complete and result.analyzed_until == 8.0
    # the first crossing (2.2-5.2 s, across the boundary at 4 s); the second was in the lost part
    assert len(result.events) == 1 and result.events[0].start < 3 and result.events[0].end > 5
    payload = result.to_dict()
    assert payload["complete"] is False and payload["analyzed_until"] == 8.0


def test_a_worker_refusal_is_the_answer():
    refusal = {"error": {"status": 415, "code": "not_a_video", "message": "No frame of the video could be decoded."}}
    router = Router({0.0: invoke_response(refusal), 6.0: invoke_response(refusal)})
    with pytest.raises(ApiError) as error:
        runners.run_lambda(SOURCE, Options(), Settings(segment_seconds=6.0, fanout_concurrency=2), 12.0,
                            FakeContext(20_000), client=router)
    assert (error.value.status, error.value.code) == (415, "not_a_video")


def test_a_worker_crash_is_a_502():
    crash = {"errorMessage": "boom", "errorType": "RuntimeError"}
    router = Router({0.0: invoke_response(crash, "Unhandled"), 6.0: invoke_response(crash, "Unhandled")})
    with pytest.raises(ApiError) as error:
        runners.run_lambda(SOURCE, Options(), Settings(segment_seconds=6.0, fanout_concurrency=2), 12.0,
                            FakeContext(20_000), client=router)
    assert (error.value.status, error.value.code) == (502, "segment_failed")


def test_segment_answers_fit_a_lambda_response(long_clip):
    options = Options(tile_width=1280, max_tiles=200)
    result = analyze_clip(long_clip, options, Settings())
    result.events = [dataclasses.replace(result.events[0], tile=Image.effect_noise((1280, 720), 80).convert("RGB"))
                     for _ in range(20)]  # 20 incompressible full-size tiles: far too many bytes
    payload = segments.result_to_dict(result, options.max_tiles)
    assert len(json.dumps(payload)) <= segments.SEGMENT_PAYLOAD_LIMIT
    assert len(payload["events"]) == 20 and any(e["tile"] for e in payload["events"])
    back = segments.result_from_dict(json.loads(json.dumps(payload)))
    assert len(back.events) == 20 and back.video == result.video


# -- the worker's side, reading its segment from S3 over HTTP ---------------------------------------------


def test_run_segment_reads_its_part_from_s3(s3_bucket, long_clip, monkeypatch):
    key = "uploads/2024/01/01/" + "b" * 32
    s3_bucket.client.upload_file(str(long_clip), s3_bucket.name, key)
    options = Options()
    event = {"vimo_segment": {"source": {"s3_key": key}, "start": 6.0, "end": None,
                              "options": segments.options_to_dict(options), "budget_ms": 20_000}}
    answer = runners.run_segment(json.loads(json.dumps(event)), FakeContext(30_000))
    json.dumps(answer)  # JSON all the way
    result = segments.result_from_dict(answer)
    assert result.complete and len(result.events) == 1 and 8.5 <= result.events[0].peak <= 10.5
    assert result.events[0].start >= 6.0 and result.events[0].tile.width == 160  # the clip's own width

    bad = dict(event["vimo_segment"], source={"s3_key": "montages/x.jpg"})
    assert runners.run_segment({"vimo_segment": bad}, FakeContext())["error"]["code"] == "bad_s3_key"



# -- JSON sources, end to end ------------------------------------------------------------------------------


def test_analyze_source_from_a_movie_url(long_clip, tmp_path):
    with serving_files(long_clip.parent) as base:
        url = f"{base}/{long_clip.name}"
        settings = Settings(allow_loopback_urls=True, fanout="off")
        result = runners.analyze_source({"movie_url": url}, tmp_path, Options(), settings, time.monotonic() + 15)
        assert len(result.events) == 2 and (tmp_path / "clip").stat().st_size == long_clip.stat().st_size
        with pytest.raises(ApiError) as refused:  # the same URL without the loopback allowance
            runners.analyze_source({"movie_url": url}, tmp_path, Options(), Settings())
        assert refused.value.code == "forbidden_url"


def test_a_long_movie_url_on_lambda_is_stored_once_and_fanned_out(s3_bucket, long_clip, tmp_path, monkeypatch):
    options = Options()
    settings = Settings(allow_loopback_urls=True, fanout="lambda", results_bucket=s3_bucket.name,
                        fanout_threshold=5.0, segment_seconds=2.0, fanout_concurrency=3)
    plan = segments.plan_segments(12.0, segments.segment_length(12.0, 3, 2.0), options.step)
    router = Router(real_answers(long_clip, plan, options))
    monkeypatch.setattr(runners, "lambda_client", lambda **kwargs: router)
    with serving_files(long_clip.parent) as base:
        result = runners.analyze_source({"movie_url": f"{base}/{long_clip.name}"}, tmp_path, options, settings,
                                         context=FakeContext(20_000))
    router.assert_all_used()
    [key] = {r["vimo_segment"]["source"]["s3_key"] for r in router.requests}
    stored = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
    assert stored["ContentLength"] == long_clip.stat().st_size
    assert len(result.events) == 2 and result.complete


def test_analyze_source_from_an_upload_in_segments(s3_bucket, long_clip, tmp_path):
    key = "uploads/2024/01/01/" + "c" * 32
    s3_bucket.client.upload_file(str(long_clip), s3_bucket.name, key)
    settings = Settings(results_bucket=s3_bucket.name, fanout="local", workers=2, fanout_threshold=5.0,
                        segment_seconds=3.0)
    result = runners.analyze_source({"s3_key": key}, tmp_path, Options(), settings)  # 4 segments, over HTTP
    assert len(result.events) == 2 and result.complete
