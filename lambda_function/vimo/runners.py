"""Where work runs: the one place that decides whether a clip is analysed in one pass, in segments
on a pool of processes on this machine, by Lambda invoking itself, on a Dask cluster, or by a Step
Functions execution; and which jobs the local server runs in its background. ``segments`` plans
the segments and merges their results; ``analysis`` analyses one clip or segment.

A request (``POST /motion``, the CLI) must answer in time, so it runs its segments with a deadline:

* on this machine (the CLI, ``make run``): a process pool over all cores (``run_local``);
* on AWS Lambda: the function invokes itself once per segment, synchronously (RequestResponse), at
  most ``settings.fanout_concurrency`` at a time (``run_lambda``); each invocation arrives at
  ``app.lambda_handler`` as ``{"vimo_segment": {...}}``, which it hands to ``run_segment`` before
  Powertools sees it. Segment workers never fan out again.

Deadlines: every runner takes a ``deadline`` (``time.monotonic()``, which is the same clock in every
process of a machine); a segment cut short reports ``complete=False`` and how far it got, a segment
that never answered is left out (see ``segments.combine``).

A job has no deadline, and reports progress as each segment finishes (``analyze_job``):

* a clip shorter than ``settings.fanout_threshold``: one pass, here;
* otherwise, its segments on a ``concurrent.futures`` executor: a pool of spawned processes over
  every core (the default), or a Dask cluster's workers (``settings.dask_scheduler``);
* on AWS (``settings.state_machine_arn``): a Step Functions execution per job, whose states each
  invoke this same function with ``{"vimo_job": {"step": ..., "job": id}}`` (``run_step``): plan
  the segments, a Map over them (each segment analysed by one invocation that writes its result to
  the store itself, retried on failure), merge, notify. No invocation runs longer than a segment,
  so a recording is not limited by Lambda's 15 minutes.

``LocalJobs`` is what makes ``make run`` run jobs: a thread in the server's process that takes
queued jobs from the store (oldest first) and runs each in a process of its own, ``job_workers``
at a time. A job's state is in the store, not in this process: when the server stops, the jobs it
was running are left marked running, and the next start puts them back in the queue.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from . import jobs
from .analysis import analyze_clip, analyze_frames
from .config import Options, Settings
from .errors import ApiError
from .frames import Clip
from .segments import combine, error_to_dict, options_from_dict, options_to_dict, plan_segments, result_from_dict, \
    result_to_dict, segment_length
from .sources import fetch_url, open_s3_clip, store_source
from .upload import Part, Upload

# A local pool runs this many segments per worker, so that a segment full of motion (decoded in
# full) does not leave the other cores idle at the end.
SEGMENTS_PER_WORKER = 3
# Lambda: seconds the handler keeps back from its invocation's timeout to merge segments, render
# the montage and answer (its analysis deadline leaves this much), and seconds a segment worker
# keeps before its own timeout.
RESPONSE_RESERVE = 3.0
SEGMENT_MARGIN = 1.5
# Local pool: seconds past the deadline to wait for segments that are stopping at it.
LOCAL_GRACE = 2.0
SEGMENT_KEY = "vimo_segment"
# Seconds between two looks at the job queue.
POLL = 0.5

log = logging.getLogger("vimo.runners")


# -- a request's media: one pass, or segments by a deadline ---------------------------------------------


def analyze(clip: str | Path, options: Options, settings: Settings, deadline: float | None = None,
            s3_key: str | Callable[[], str] | None = None, context=None,
            progress: Callable[[float], None] | None = None):
    """A clip's ``Result``: in one pass, or in segments when it is long enough to be worth it.

    ``clip`` is what FFmpeg opens (a local path or a presigned S3 URL), once whichever way it goes.
    On Lambda (``settings.fanout == "lambda"``) segments need an ``s3_key`` every worker can read
    (or a function that stores the clip and returns one, called only when the clip is long enough)
    and the invocation's ``context`` (for the function's ARN); without them the clip is analysed in
    one pass. ``progress`` (a progress bar's) is called with the seconds of the clip analysed so far,
    summed over the segments on a local pool.
    """

    on_lambda = settings.fanout == "lambda" and s3_key is not None and context is not None
    on_pool = settings.fanout == "local" and local_workers(settings) > 1
    if not (on_lambda or on_pool):  # one pass whatever the length
        return analyze_clip(clip, options, settings, deadline=deadline, progress=progress)
    opened = Clip(str(clip), settings)
    duration = opened.duration_hint()
    if duration < settings.fanout_threshold:
        return analyze_clip(opened, options, settings, deadline=deadline, progress=progress)
    opened.close()
    if on_lambda:
        key = s3_key() if callable(s3_key) else s3_key
        return run_lambda({"s3_key": key}, options, settings, duration, context, deadline=deadline)
    return run_local(str(clip), options, settings, duration, deadline=deadline, progress=progress)


def analyze_upload(upload: Upload, workdir: Path, settings: Settings, deadline: float | None = None, context=None):
    """Any request's media analysed: a clip sent by reference, a clip in the body (written to
    ``workdir``, never under the client's name), or a burst of frames."""

    if upload.source is not None:
        return analyze_source(upload.source, workdir, upload.options, settings, deadline, context)
    if upload.clip is not None:
        path = Path(workdir) / "clip"
        path.write_bytes(upload.clip.data)
        return analyze(path, upload.options, settings, deadline, context=context)
    return analyze_frames(upload, settings)


def analyze_source(source: dict, workdir: Path, options: Options, settings: Settings, deadline: float | None = None,
                   context=None):
    """A clip sent by reference, ``{"s3_key": ...}`` or ``{"movie_url": ...}``, analysed (the handler's
    entry point for JSON requests).

    An upload is opened by FFmpeg over HTTP through a presigned URL; a movie_url is downloaded to
    ``workdir`` by the SSRF-safe fetcher first (see ``sources``). On Lambda, a long fetched clip is
    copied to S3 so that the segment workers can read it.
    """

    if "s3_key" in source:
        key = source["s3_key"]
        return analyze(open_s3_clip(key, settings), options, settings, deadline, s3_key=key, context=context)
    path = Path(workdir) / "clip"  # never the URL's file name
    fetch_url(source["movie_url"], path, settings, deadline)
    store = (lambda: store_source(path, settings)) if settings.results_bucket else None
    return analyze(path, options, settings, deadline, s3_key=store, context=context)


def lambda_deadline(context) -> float:
    """When an invocation's analysis must stop (``time.monotonic()`` seconds) so that what it found
    is still merged, rendered and returned before Lambda's timeout kills it."""
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESPONSE_RESERVE


def local_workers(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


# -- local: a process pool -----------------------------------------------------------------------------


def run_local(clip: str, options: Options, settings: Settings, duration: float, deadline: float | None = None,
              workers: int | None = None, progress: Callable[[float], None] | None = None):
    """Analyse the clip's segments on a pool of ``workers`` processes (default: one per core);
    ``progress`` is called (from a thread) with the seconds analysed so far, summed over segments."""
    started = time.perf_counter()
    workers = workers or local_workers(settings)
    plan = _local_plan(duration, workers, options, settings)
    # spawn, not fork: the parent has opened the clip (FFmpeg's threads) and may run in a threaded
    # server; a forked copy of those is not safe.
    spawn = multiprocessing.get_context("spawn")
    reports = spawn.Queue() if progress else None
    pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(plan)), mp_context=spawn,
                                                  initializer=_report_to, initargs=(reports,))
    relay = threading.Thread(target=_relay, args=(reports, plan, progress), name="progress", daemon=True)
    if reports is not None:
        relay.start()
    try:
        futures = [pool.submit(_analyze_segment, clip, options, settings, start, end, deadline, index)
                   for index, (start, end) in enumerate(plan)]
        for index, future in enumerate(futures if reports is not None else ()):
            future.add_done_callback(lambda _, index=index: reports.put((index, math.inf)))
        results = _collect(futures, deadline, grace=LOCAL_GRACE)
    finally:
        # Segments still running past the deadline stop at it by themselves; do not wait for them.
        pool.shutdown(wait=False, cancel_futures=True)
        if reports is not None:
            reports.put(None)
            relay.join(1.0)
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


def _local_plan(duration: float, workers: int, options: Options, settings: Settings) -> list[tuple[float, float]]:
    """Segments for ``workers`` processes (or Dask threads): ``SEGMENTS_PER_WORKER`` each."""
    return plan_segments(duration, segment_length(duration, workers * SEGMENTS_PER_WORKER, settings.segment_seconds),
                         options.step)


def _analyze_segment(clip, options, settings, start, end, deadline, index=0):

    # One decoder thread per process: the pool is the parallelism, and threads on top of it only
    # contend for the same cores.
    progress = None if _reports is None else reporter(_reports, index)
    return analyze_clip(clip, options, settings, start=start, end=end, deadline=deadline, threads=1,
                        progress=progress)


# Progress from pool processes: each sends (index, sample time) on a queue given to the pool's
# initializer (a multiprocessing queue can only reach a process that way), at most every REPORT_EVERY
# seconds; a thread of the parent relays the sum.
REPORT_EVERY = 0.2
_reports = None


def _report_to(queue) -> None:
    global _reports
    _reports = queue


def reporter(queue, index: int) -> Callable[[float], None]:
    """A ``progress`` callback that puts ``(index, seconds)`` on ``queue``, at most every REPORT_EVERY s."""
    last = -math.inf

    def report(seconds: float) -> None:
        nonlocal last
        if time.monotonic() - last >= REPORT_EVERY:
            last = time.monotonic()
            queue.put((index, seconds))

    return report


def _relay(reports, plan, progress: Callable[[float], None]) -> None:
    done = [0.0] * len(plan)
    for index, seconds in iter(reports.get, None):  # inf: that segment is done
        start, end = plan[index]
        done[index] = min(max(0.0, seconds - start), end - start) if math.isfinite(end) or math.isfinite(seconds) \
            else done[index]
        progress(sum(done))


def _collect(futures: list, deadline: float | None, grace: float = 0.0) -> list:
    """Each future's result, in order; ``None`` for those not done by ``deadline`` (+ ``grace``).
    An ``ApiError`` from any segment (the clip is not a video, ...) is the whole request's answer."""
    timeout = None if deadline is None else max(0.0, deadline + grace - time.monotonic())
    done, _ = concurrent.futures.wait(futures, timeout=timeout)
    results = []
    for future in futures:
        if future not in done:
            future.cancel()
            results.append(None)
        else:
            results.append(future.result())
    return results


# -- AWS Lambda: the function invokes itself -----------------------------------------------------------


def run_lambda(source: dict, options: Options, settings: Settings, duration: float, context,
               deadline: float | None = None, client=None):
    """Analyse the clip's segments in parallel invocations of this same function.

    Each segment is one synchronous ``Invoke`` of ``context.invoked_function_arn`` (the very version
    or alias that is running, so parent and workers never disagree on the code), at most
    ``settings.fanout_concurrency`` in flight. Workers are told how long they may take, and finish
    with what they have before the parent must answer.
    """
    started = time.perf_counter()
    deadline = lambda_deadline(context) if deadline is None else deadline
    budget = deadline - time.monotonic()
    slots = max(1, settings.fanout_concurrency)
    plan = plan_segments(duration, segment_length(duration, slots, settings.segment_seconds), options.step)
    client = client or lambda_client(read_timeout=max(1.0, budget) + 5)
    function = context.invoked_function_arn
    options_payload = options_to_dict(options)

    from botocore.exceptions import BotoCoreError, ClientError  # only Lambda fan-outs need botocore

    def invoke(start: float, end: float) -> object:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        payload = {SEGMENT_KEY: {"source": source, "start": start, "end": None if math.isinf(end) else end,
                                 "options": options_payload, "budget_ms": remaining_ms}}
        try:
            response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                                     Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:  # throttled, timed out, not allowed
            raise ApiError(502, "segment_failed", f"Analysing the clip from {start:.0f} s failed: {exc}") from None
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise ApiError(502, "segment_failed", f"Analysing the clip from {start:.0f} s failed: "
                                                  f"{body[:300].decode('utf-8', 'replace')}")
        return result_from_dict(json.loads(body))

    pool = concurrent.futures.ThreadPoolExecutor(min(slots, len(plan)), thread_name_prefix="segment")
    try:
        futures = [pool.submit(invoke, start, end) for start, end in plan]
        # A worker answers within its budget; a little grace covers the network around it.
        results = _collect(futures, deadline, grace=RESPONSE_RESERVE / 2)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait on a worker that is past its time
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


def lambda_client(read_timeout: float = 900.0):
    """A Lambda client whose read timeout outlasts a segment (botocore's default, 60 s, may not)."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=read_timeout, connect_timeout=5, tcp_keepalive=True,
                    retries={"mode": "standard", "total_max_attempts": 3},
                    max_pool_connections=64)
    return boto3.session.Session().client("lambda", config=config)


def run_segment(event: dict, context) -> dict:
    """The worker's side: analyse one segment and answer with JSON; a failure is an error object,
    so that the parent can tell a refusal from a crash without parsing Lambda's error format."""

    try:
        spec = event[SEGMENT_KEY]
        settings = Settings.from_env()
        options = options_from_dict(spec["options"])
        start = float(spec["start"])
        end = math.inf if spec.get("end") is None else float(spec["end"])
        seconds = context.get_remaining_time_in_millis() / 1000 - SEGMENT_MARGIN
        if spec.get("budget_ms") is not None:
            seconds = min(seconds, spec["budget_ms"] / 1000 - SEGMENT_MARGIN)
        deadline = time.monotonic() + max(0.0, seconds)
        clip = open_s3_clip(spec["source"]["s3_key"], settings)
        result = analyze_clip(clip, options, settings, start=start, end=end, deadline=deadline)
        return result_to_dict(result, options.max_tiles)
    except ApiError as error:
        return error_to_dict(error)
    except Exception as exc:  # a bug: logged by Lambda, answered as the parent's 502
        return error_to_dict(ApiError(502, "segment_failed", f"{type(exc).__name__}: {exc}"))


# -- one job's analysis ---------------------------------------------------------------------------------


def analyze_job(job: jobs.Job, where, workdir: Path, settings: Settings, progress: Callable[[float], None]):
    """``(Result, name, Options)`` of a job's media, wherever the request left it."""
    options = options_from_dict(job.request.get("options", {}))
    name = job.request.get("name", "clip")
    source = job.request.get("source")
    if source is None:  # a burst of frames, stored with the job
        return analyze_frames(_frames(job, where, options), settings), name, options
    if "movie_url" in source:
        clip = str(workdir / "clip")  # never the URL's file name
        fetch_url(source["movie_url"], clip, settings)
    else:
        clip = _location(job, where, settings)
    return analyze_job_clip(clip, options, settings, progress), name, options


def analyze_job_clip(clip: str, options, settings: Settings,
                     progress: Callable[[float], None] = lambda fraction: None):
    """A clip's ``Result``, in segments on an executor when it is long enough; ``progress`` is told
    the fraction of segments done each time one finishes."""
    started = time.perf_counter()
    opened = Clip(str(clip), settings)
    duration = opened.duration_hint()
    if duration < settings.fanout_threshold or settings.fanout == "off":
        return analyze_clip(opened, options, settings)
    opened.close()
    with executor(settings) as (pool, workers):
        plan = _local_plan(duration, workers, options, settings)
        results: list = [None] * len(plan)
        futures = {pool.submit(_analyze_segment, str(clip), options, settings, start, end, None): i
                   for i, (start, end) in enumerate(plan)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            results[futures[future]] = future.result()  # a segment's refusal is the job's
            progress(done / len(plan))
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


@contextlib.contextmanager
def executor(settings: Settings):
    """``(executor, workers)``: a Dask cluster's, when ``settings.dask_scheduler`` names one, else a
    pool of processes on this machine. Either is a ``concurrent.futures.Executor``."""
    if settings.dask_scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("DASK_SCHEDULER is set but Dask is not installed: pip install 'vimo[dask]'") from None
        with Client(settings.dask_scheduler, timeout=30, set_as_default=False) as client:
            # One segment per worker thread at a time; the cluster's size decides how many segments.
            workers = max(1, sum(client.nthreads().values()))
            with client.get_executor(pure=False) as pool:
                yield pool, workers
        return
    workers = local_workers(settings)
    # spawn, not fork: the parent may hold FFmpeg's threads and run in a threaded server.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool, workers


# -- starting a job -------------------------------------------------------------------------------------


def start(job: jobs.Job, settings: Settings, where=None) -> None:
    """Hand a new job to whatever runs jobs here: the state machine (AWS), else the local server's
    queue."""
    if settings.state_machine_arn:
        try:
            start_execution(job, settings)
        except Exception as exc:  # the job would wait for ever: it says why instead
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            jobs.failed(job, {"code": "job_not_started", "message": message}, where or jobs.store(settings))
            raise
        return
    where = where or jobs.store(settings)
    where.put(f"{jobs.QUEUED}{_marker(job)}", b"")


def _marker(job: jobs.Job) -> str:
    """Queue markers sort oldest first: the job's creation time, then its id."""
    stamp = "".join(ch for ch in job.created_at if ch.isdigit())
    return f"{stamp}-{job.id}"


def _id(marker_key: str) -> str:
    return marker_key.rsplit("-", 1)[-1]


# -- the local server's background jobs ----------------------------------------------------------------


class LocalJobs:
    """Runs queued jobs in processes of their own, ``settings.job_workers`` at a time, while the
    local server runs. One runner per store: a second server on the same data directory serves the
    API but leaves the jobs to the first."""

    def __init__(self, settings: Settings, poll: float = POLL):
        self.settings = settings
        self.where = jobs.store(settings)
        self.poll = poll
        self.running: dict[str, tuple[str, multiprocessing.Process]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = None

    def start(self) -> bool:
        if self.settings.job_workers <= 0 or not self._take_lock():
            return False
        # Jobs that were running when the last server stopped start again from the beginning.
        for key in self.where.list(jobs.RUNNING):
            marker = key[len(jobs.RUNNING):]
            self.where.put(f"{jobs.QUEUED}{marker}", b"")
            self.where.delete(key)
            log.info("job %s: picked up again", _id(marker))
        self._thread = threading.Thread(target=self._loop, name="vimo-jobs", daemon=True)
        self._thread.start()
        return True

    def _take_lock(self) -> bool:
        if not isinstance(self.where, jobs.FileStore):
            return True
        self.where.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.where.root / "runner.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            log.warning("another vimo server runs the jobs in %s; this one only serves the API", self.where.root)
            self._lock.close()
            self._lock = None
            return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # S3 unreachable for a moment, a full disk: try again at the next look
                log.exception("the job queue could not be read")
            self._stop.wait(self.poll)

    def step(self) -> None:
        """Reap finished job processes, then start queued jobs while there are free slots."""
        for job_id, (marker, process) in list(self.running.items()):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode != 0:
                jobs.fail(job_id, self.settings, f"The job's worker process stopped unexpectedly (exit code "
                                                 f"{process.exitcode}).")
            self.where.delete(f"{jobs.RUNNING}{marker}")
            del self.running[job_id]
        free = self.settings.job_workers - len(self.running)
        if free <= 0 or self._stop.is_set():
            return
        for key in self.where.list(jobs.QUEUED)[:free]:
            marker = key[len(jobs.QUEUED):]
            self.where.put(f"{jobs.RUNNING}{marker}", b"")
            self.where.delete(key)
            process = multiprocessing.get_context("spawn").Process(target=_run, args=(marker,),
                                                                   name=f"vimo-job-{_id(marker)[:8]}")
            process.start()
            self.running[_id(marker)] = (marker, process)

    def close(self) -> None:
        """Stop taking jobs; jobs still running stop here and stay marked running, for the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for _, process in self.running.values():
            try:  # the job's process group: its segments' processes too, which would outlive it
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):  # not yet its own group: nothing started
                process.terminate()
        for _, process in self.running.values():
            process.join(10)
        self.running.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _run(marker: str) -> None:
    """A job's process: the job, then its running marker gone (the job is no longer the queue's).
    It leads a process group of its own, with the processes its segments run on, so that stopping
    it (``LocalJobs.close``) stops them too instead of leaving them waiting for work forever."""
    os.setpgrp()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings.from_env()
    job = jobs.run(_id(marker), settings)
    jobs.store(settings).delete(f"{jobs.RUNNING}{marker}")
    log.info("job %s: %s", job.id, job.status if job.error is None else f"{job.status} ({job.error['code']})")


# -- AWS Step Functions: the state machine's steps -------------------------------------------------------

STEP_KEY = "vimo_job"


def start_execution(job: jobs.Job, settings: Settings) -> None:
    """Start the job's execution, named after the job: Step Functions refuses a second execution of
    the same name with other input, and answers a repeat of the same start with the first one."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.session.Session().client("stepfunctions").start_execution(
            stateMachineArn=settings.state_machine_arn, name=job.id, input=json.dumps({"job": job.id}))
    except (BotoCoreError, ClientError) as exc:
        raise ApiError(502, "job_not_started", f"The job could not be started: {exc}") from None


def run_step(event: dict, context) -> dict:
    """One state of the jobs state machine, invoked as ``{"vimo_job": {"step", "job", ...}}``."""
    spec = event[STEP_KEY]
    settings = Settings.from_env()
    where = jobs.store(settings)
    job = jobs.load(spec["job"], settings, where)
    step = spec["step"]
    if step == "plan":
        return plan_job(job, where, settings)
    if step == "segment":
        return analyze_job_segment(job, spec["segment"], where, settings, context)
    if step == "merge":
        return merge_job(job, where, settings)
    if step == "notify":
        jobs.notify(job, settings, where)
        return {"job": job.id, "status": job.status}
    if step == "fail":  # a step failed for good (retries spent): the job says why
        cause = (spec.get("error") or {}).get("Cause") or (spec.get("error") or {}).get("Error") or "a step failed"
        if not job.ended:
            jobs.failed(job, {"code": "job_failed", "message": f"The job's state machine failed: {str(cause)[:500]}"},
                        where)
        where.remove_files(job.id)
        return {"job": job.id, "status": "failed"}
    raise ValueError(f"unknown job step {step!r}")


def plan_job(job: jobs.Job, where, settings: Settings) -> dict:
    """The job's segments: ``{"job", "segments": [{"index", "start", "end"}, ...]}`` (none when the
    media is refused: the job has failed, and the Map has nothing to do)."""
    import tempfile

    if job.ended:
        return {"job": job.id, "segments": []}
    jobs.begin(job, where)
    plan: list = []
    with jobs.outcome(job, where, last=False) as running:
        options = options_from_dict(job.request.get("options", {}))
        if job.request.get("source") is None:  # frames: one segment, the whole burst
            plan = [(0.0, math.inf)]
        else:
            if "movie_url" in job.request["source"]:  # fetched once, then read by every segment

                with tempfile.TemporaryDirectory(prefix="vimo-fetch-") as folder:
                    path = f"{folder}/clip"
                    fetch_url(job.request["source"]["movie_url"], path, settings)
                    where.put_path(jobs.file_key(job.id, "clip"), path)
                running.request["source"] = {"stored": "clip"}

            with Clip(_location(running, where, settings), settings, threads=1) as clip:
                duration = clip.duration_hint()
            plan = [(0.0, math.inf)] if duration < settings.fanout_threshold \
                else plan_segments(duration, settings.segment_seconds, options.step)
        running.request["plan"] = [[start, None if math.isinf(end) else end] for start, end in plan]
        jobs.save(running, where)
        return {"job": job.id, "segments": [{"index": i, "start": start, "end": end}
                                            for i, (start, end) in enumerate(running.request["plan"])]}
    return {"job": job.id, "segments": []}


def _location(job: jobs.Job, where, settings: Settings) -> str:
    """What FFmpeg opens for the job's clip (one fetched from a movie_url is the caller's)."""
    source = job.request["source"]
    if "s3_key" in source:
        return open_s3_clip(source["s3_key"], settings)
    if "object" in source:  # a camera's upload (incoming/...) in the bucket
        return where.location(source["object"])
    return where.location(jobs.file_key(job.id, "clip"))  # a clip sent in the request, stored with the job


def _frames(job: jobs.Job, where, options: Options) -> Upload:
    """A job's burst of frames, as stored with it."""
    return Upload(options=options, frames=tuple(
        Part(where.get(jobs.file_key(job.id, frame["file"])) or b"", frame["content_type"], frame["name"])
        for frame in job.request.get("frames", [])))


def segment_key(job_id: str, index: int) -> str:
    return jobs.file_key(job_id, f"segments/{index:05d}.json")


def analyze_job_segment(job: jobs.Job, segment: dict, where, settings: Settings, context) -> dict:
    """One segment, analysed within this invocation's time and written to the store as the
    segments wire format. A refusal of the media is written too (the job fails at the merge; no
    retry would change it); anything else raises, and the state machine retries the segment."""
    options = options_from_dict(job.request.get("options", {}))
    index = int(segment["index"])
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SEGMENT_MARGIN
    try:
        if job.request.get("source") is None:
            result = analyze_frames(_frames(job, where, options), settings)
        else:
            end = math.inf if segment.get("end") is None else float(segment["end"])
            result = analyze_clip(_location(job, where, settings), options, settings, start=float(segment["start"]),
                                  end=end, deadline=deadline)
        payload = result_to_dict(result, options.max_tiles)
    except ApiError as error:
        payload = error_to_dict(error)
    where.put(segment_key(job.id, index), json.dumps(payload).encode(), "application/json")
    return {"job": job.id, "index": index}


def merge_job(job: jobs.Job, where, settings: Settings) -> dict:
    """The segments' results, merged into the job's result (montage, record, results/ for cameras)."""
    if job.ended:
        return {"job": job.id, "status": job.status}
    started = time.perf_counter()
    with jobs.outcome(job, where):
        options = options_from_dict(job.request.get("options", {}))
        plan = [(start, math.inf if end is None else end) for start, end in job.request["plan"]]
        results = []
        for index in range(len(plan)):
            data = where.get(segment_key(job.id, index))
            if data is None:
                raise ApiError(502, "segment_failed", f"Segment {index} of the job left no result.")
            results.append(result_from_dict(json.loads(data)))  # a segment's refusal is the job's
        result = combine(results, plan, options, 0)
        result.elapsed_ms = sum(r.elapsed_ms for r in results) + round((time.perf_counter() - started) * 1000)
        jobs.finish(job, result, job.request.get("name", "clip"), options, where)
    return {"job": job.id, "status": job.status}
