"""Where a job's work runs (one pass, a pool of processes on this machine, a Dask cluster, or AWS
Step Functions), and which jobs the local server runs in its background.

``segments`` plans a long clip's segments and merges their results; this module decides where
the segments of a *job* are analysed, and reports progress as each one finishes:

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
import logging
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Callable

from . import jobs
from .config import Settings

# A local pool runs this many segments per worker, so that a segment full of motion (decoded in
# full) does not leave the other cores idle at the end (as segments.run_local does).
SEGMENTS_PER_WORKER = 3
# Seconds between two looks at the queue.
POLL = 0.5

log = logging.getLogger("vimo.runners")


# -- one job's analysis ---------------------------------------------------------------------------------


def analyze_job(job: jobs.Job, where, workdir: Path, settings: Settings, progress: Callable[[float], None]):
    """``(Result, name, Options)`` of a job's media, wherever the request left it."""
    from .analysis import analyze_frames
    from .segments import options_from_dict
    from .upload import Part, Upload

    options = options_from_dict(job.request.get("options", {}))
    name = job.request.get("name", "clip")
    source = job.request.get("source")
    if source is None:  # a burst of frames, stored with the job
        parts = tuple(Part(where.get(jobs.file_key(job.id, frame["file"])) or b"", frame["content_type"], frame["name"])
                      for frame in job.request.get("frames", []))
        return analyze_frames(Upload(options=options, frames=parts), settings), name, options
    if "s3_key" in source:
        from .sources import open_s3_clip

        clip = open_s3_clip(source["s3_key"], settings)
    elif "movie_url" in source:
        from .sources import fetch_url

        clip = str(workdir / "clip")  # never the URL's file name
        fetch_url(source["movie_url"], clip, settings)
    elif "object" in source:  # a camera's upload (incoming/...) in the bucket
        clip = where.location(source["object"])
    else:  # a clip sent in the request, stored with the job
        clip = where.location(jobs.file_key(job.id, "clip"))
    return analyze(clip, options, settings, progress), name, options


def analyze(clip: str, options, settings: Settings, progress: Callable[[float], None] = lambda fraction: None):
    """A clip's ``Result``, in segments on an executor when it is long enough; ``progress`` is told
    the fraction of segments done each time one finishes."""
    from .frames import Clip
    from .segments import combine, plan_segments, segment_length

    started = time.perf_counter()
    opened = Clip(str(clip), settings)
    duration = opened.duration_hint()
    if duration < settings.fanout_threshold or settings.fanout == "off":
        from .analysis import analyze_clip

        return analyze_clip(opened, options, settings)
    opened.close()
    with executor(settings) as (pool, workers):
        plan = plan_segments(duration, segment_length(duration, workers * SEGMENTS_PER_WORKER,
                                                      settings.segment_seconds), options.step)
        results: list = [None] * len(plan)
        futures = {pool.submit(analyze_segment, str(clip), options, settings, start, end): i
                   for i, (start, end) in enumerate(plan)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            results[futures[future]] = future.result()  # a segment's refusal is the job's
            progress(done / len(plan))
    return combine(results, plan, options, round((time.perf_counter() - started) * 1000))


def analyze_segment(clip: str, options, settings: Settings, start: float, end: float):
    """One segment, in a worker: one decoder thread, since the pool is the parallelism."""
    from .analysis import analyze_clip

    return analyze_clip(clip, options, settings, start=start, end=end, threads=1)


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
    workers = settings.workers or multiprocessing.cpu_count()
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
            from .errors import ApiError

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
            process.terminate()
        for _, process in self.running.values():
            process.join(10)
        self.running.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _run(marker: str) -> None:
    """A job's process: the job, then its running marker gone (the job is no longer the queue's)."""
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
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import ApiError

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
        jobs.fail(job.id, settings, f"The job's state machine failed: {str(cause)[:500]}", "job_failed")
        where.remove_files(job.id)
        return {"job": job.id, "status": "failed"}
    raise ValueError(f"unknown job step {step!r}")


def plan_job(job: jobs.Job, where, settings: Settings) -> dict:
    """The job's segments: ``{"job", "segments": [{"index", "start", "end"}, ...]}`` (none when the
    media is refused: the job has failed, and the Map has nothing to do)."""
    import math
    import tempfile

    from .segments import options_from_dict, plan_segments

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
                from .sources import fetch_url

                with tempfile.TemporaryDirectory(prefix="vimo-fetch-") as folder:
                    path = f"{folder}/clip"
                    fetch_url(job.request["source"]["movie_url"], path, settings)
                    where.put_path(jobs.file_key(job.id, "clip"), path)
                running.request["source"] = {"stored": "clip"}
            from .frames import Clip

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
    """What FFmpeg opens for the job's clip."""
    source = job.request["source"]
    if "s3_key" in source:
        from .sources import open_s3_clip

        return open_s3_clip(source["s3_key"], settings)
    if "object" in source:
        return where.location(source["object"])
    return where.location(jobs.file_key(job.id, "clip"))


def segment_key(job_id: str, index: int) -> str:
    return jobs.file_key(job_id, f"segments/{index:05d}.json")


def analyze_job_segment(job: jobs.Job, segment: dict, where, settings: Settings, context) -> dict:
    """One segment, analysed within this invocation's time and written to the store as the
    segments wire format. A refusal of the media is written too (the job fails at the merge; no
    retry would change it); anything else raises, and the state machine retries the segment."""
    import json
    import math

    from .errors import ApiError
    from .segments import SEGMENT_MARGIN, options_from_dict, result_to_dict

    options = options_from_dict(job.request.get("options", {}))
    index = int(segment["index"])
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SEGMENT_MARGIN
    try:
        if job.request.get("source") is None:
            from .analysis import analyze_frames
            from .upload import Part, Upload

            parts = tuple(Part(where.get(jobs.file_key(job.id, f["file"])) or b"", f["content_type"], f["name"])
                          for f in job.request.get("frames", []))
            result = analyze_frames(Upload(options=options, frames=parts), settings)
        else:
            from .analysis import analyze_clip

            end = math.inf if segment.get("end") is None else float(segment["end"])
            result = analyze_clip(_location(job, where, settings), options, settings, start=float(segment["start"]),
                                  end=end, deadline=deadline)
        payload = result_to_dict(result, options.max_tiles)
    except ApiError as error:
        payload = {"error": {"status": error.status, "code": error.code, "message": error.message}}
    where.put(segment_key(job.id, index), json.dumps(payload).encode(), "application/json")
    return {"job": job.id, "index": index}


def merge_job(job: jobs.Job, where, settings: Settings) -> dict:
    """The segments' results, merged into the job's result (montage, record, results/ for cameras)."""
    import json
    import math

    from .errors import ApiError
    from .segments import combine, options_from_dict, result_from_dict

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
