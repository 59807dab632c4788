"""Jobs: a clip analysed in the background, asked about later, its state kept where it outlives
the server that runs it.

A request through API Gateway must answer within 29 s; a day of recordings cannot. ``POST /jobs``
stores what is to be analysed and answers at once with an id; the work runs elsewhere (see
``runners``) and ``GET /jobs/{id}`` reads its record back. A record is one JSON document:

    {"id", "status": queued|running|done|failed, "progress": 0..1, "created_at", "updated_at",
     "request": {what to analyse, the options, callback_url},   (never shown to callers)
     "result": the /motion?format=json answer (done),  "error": {"code", "message"} (failed),
     "callback": {"url", "delivered", "attempts", "status"} (after a callback was tried)}

Where records live (``store``): files under ``settings.data_dir`` (each written whole to a temporary
file, then renamed over the old one with ``os.replace``, so a reader or a crash never sees half a
record), or objects under ``jobs/`` in the results bucket when ``RESULTS_BUCKET`` is set. Both are
the same small key-value interface, so nothing else knows which it is. A job's stored inputs (a
clip or frames sent in the request) and its montage live beside its record:
``jobs/<id>/clip``, ``jobs/<id>/frame-0000``, ``jobs/<id>/montage.jpg``.

``run`` does one job from start to end: it is what a local worker process, a Step Functions task
or a Dask client calls, and the only place that moves a record from running to done or failed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .config import Options, Settings
from .errors import ApiError

JOB_ID = re.compile(r"[0-9a-f]{32}")
PREFIX = "jobs/"
# Markers of jobs that a local runner must still run (see runners.LocalJobs): jobs/queued/<id> and
# jobs/running/<id>, empty objects or files, so that finding them is one listing, not a read of
# every record.
QUEUED, RUNNING = "jobs/queued/", "jobs/running/"
JPEG = "image/jpeg"
# A running job writes its progress at most this often (seconds): enough to watch, few writes.
PROGRESS_EVERY = 0.5

log = logging.getLogger("vimo.jobs")


def now() -> str:
    """ISO 8601 in UTC with milliseconds, as every record's created_at and updated_at."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    id: str
    status: str = "queued"
    progress: float = 0.0
    created_at: str = field(default_factory=now)
    updated_at: str = ""
    request: dict = field(default_factory=dict)
    result: dict | None = None
    error: dict | None = None
    callback: dict | None = None

    def __post_init__(self):
        self.updated_at = self.updated_at or self.created_at

    def to_dict(self) -> dict:
        return {name: value for name, value in vars(self).items() if value is not None}

    @classmethod
    def from_dict(cls, document: dict) -> "Job":
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in document.items() if k in known})

    def view(self, montage_url: str | None = None) -> dict:
        """What callers see (GET /jobs/{id}, callbacks): the record less its request."""
        shown = {"id": self.id, "status": self.status, "progress": round(self.progress, 4),
                 "created_at": self.created_at, "updated_at": self.updated_at}
        if self.result is not None:
            shown["result"] = {**self.result, **({"montage_url": montage_url} if montage_url else {})}
        if self.error is not None:
            shown["error"] = self.error
        if self.callback is not None:
            shown["callback"] = self.callback
        return shown

    @property
    def ended(self) -> bool:
        return self.status in ("done", "failed")


def record_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}.json"


def file_key(job_id: str, name: str) -> str:
    return f"{PREFIX}{job_id}/{name}"


def montage_key(job: Job) -> str:
    """Where a job's montage is stored: beside its record, or where the request said (camera uploads)."""
    output = job.request.get("output")
    return f"{output}.jpg" if output else file_key(job.id, "montage.jpg")


def new_id() -> str:
    return uuid.uuid4().hex


def id_for_object(bucket: str, key: str, etag: str) -> str:
    """The one job id of an S3 object's version: the same notification delivered twice names the
    same job, and a new upload under the same key (another ETag) a new one."""
    return hashlib.sha256(f"{bucket}\n{key}\n{etag.strip(chr(34))}".encode()).hexdigest()[:32]


def check_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id or ""):
        raise no_such_job(job_id)
    return job_id


def no_such_job(job_id: str) -> ApiError:
    return ApiError(404, "no_such_job", f"No job has the id {job_id!r} (or it has expired).")


# -- stores ---------------------------------------------------------------------------------------------


class FileStore:
    """Keys as files under a directory; each write is whole and atomic (temporary file + os.replace)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes, content_type: str = "", exclusive: bool = False) -> bool:
        """Store ``data`` under ``key``; with ``exclusive``, only if nothing is there yet (False if
        something was)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if exclusive:
                try:
                    os.link(temporary, path)  # atomic, and fails if the name exists
                except FileExistsError:
                    return False
            else:
                os.replace(temporary, path)
            return True
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def put_path(self, key: str, path: str) -> None:
        """Store the file at ``path`` under ``key`` (moved, not read into memory)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        import shutil

        shutil.move(path, target)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def list(self, prefix: str, deep: bool = False) -> list[str]:
        folder = self._path(prefix)
        if deep:
            return sorted(f"{prefix}{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()) \
                if folder.is_dir() else []
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}{p.name}" for p in folder.iterdir() if not p.name.startswith(".tmp-"))

    def location(self, key: str) -> str:
        """What FFmpeg opens to read the object: here, its path."""
        return str(self._path(key))

    def url(self, key: str) -> str | None:
        """A URL that anyone holding it can download the object from: none for files (the API
        serves them, see app.job_montage)."""
        return None

    def remove_files(self, job_id: str) -> None:
        """The job's stored inputs and segment results (not its montage), once they have been used."""
        import shutil

        folder = self._path(file_key(job_id, ""))
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != "montage.jpg":
                path.unlink()


class S3Store:
    """Keys as objects in the results bucket (the deployment's, or moto's in tests)."""

    def __init__(self, bucket: str, settings: Settings):
        self.bucket = bucket
        self.settings = settings

    @property
    def s3(self):
        from .storage import client

        return client()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream", exclusive: bool = False) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)
            return True
        except ClientError as exc:
            # 412: something is there already; 409: another writer is creating it at this moment.
            if exclusive and exc.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                                          "ConditionalRequestConflict"):
                return False
            raise _storage(exc) from None
        except BotoCoreError as exc:
            raise _storage(exc) from None

    def put_path(self, key: str, path: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": "application/octet-stream"})
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise _storage(exc) from None

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _storage(exc) from None
        except BotoCoreError as exc:
            raise _storage(exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise _storage(exc) from None

    def list(self, prefix: str, deep: bool = False) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                      **({} if deep else {"Delimiter": "/"}))
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise _storage(exc) from None

    def location(self, key: str) -> str:
        """What FFmpeg opens: a presigned GET, so that it seeks with range requests."""
        from .sources import READ_URL_EXPIRY

        return self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                              ExpiresIn=READ_URL_EXPIRY)

    def url(self, key: str) -> str | None:
        return self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                              ExpiresIn=self.settings.url_expiry)

    def remove_files(self, job_id: str) -> None:
        for key in self.list(file_key(job_id, ""), deep=True):
            if not key.endswith("/montage.jpg"):
                self.delete(key)


def _storage(exc) -> ApiError:
    from .errors import storage_failed

    return storage_failed(f"The job store in S3 failed: {exc}")


def store(settings: Settings) -> FileStore | S3Store:
    """The results bucket when there is one (AWS, or a local server given RESULTS_BUCKET), else files."""
    if settings.results_bucket:
        return S3Store(settings.results_bucket, settings)
    return FileStore(settings.data_dir)


# -- records --------------------------------------------------------------------------------------------


def load(job_id: str, settings: Settings, where=None) -> Job:
    data = (where or store(settings)).get(record_key(check_id(job_id)))
    if data is None:
        raise no_such_job(job_id)
    return Job.from_dict(json.loads(data))


def save(job: Job, where) -> None:
    job.updated_at = now()
    where.put(record_key(job.id), json.dumps(job.to_dict()).encode(), "application/json")


def create(job: Job, where) -> bool:
    """Write a new record; False (and nothing written) if a job with this id exists already."""
    return where.put(record_key(job.id), json.dumps(job.to_dict()).encode(), "application/json", exclusive=True)


def submit(upload, settings: Settings, base_url: str | None = None) -> Job:
    """A new queued job for what a request sent: a clip by reference is kept as a reference, a clip
    or frames in the body are stored beside the record (a job outlives its request). ``base_url``:
    where the API was reached, for a montage_url the API itself serves."""
    from .segments import options_to_dict

    where = store(settings)
    callback_url = upload.extras.get("callback_url")
    if callback_url is not None:
        from .callbacks import check_callback_url

        callback_url = check_callback_url(callback_url, settings)
    if upload.source is not None and "s3_key" in upload.source:
        from .sources import open_s3_clip

        open_s3_clip(upload.source["s3_key"], settings)  # a missing upload is refused now, not later
    check_media(upload, settings)
    job = Job(new_id())
    request = {"name": upload.name, "options": options_to_dict(upload.options)}
    if callback_url:
        request["callback_url"] = callback_url
    if base_url:
        request["base_url"] = base_url
    if upload.source is not None:
        request["source"] = dict(upload.source)
    elif upload.clip is not None:
        where.put(file_key(job.id, "clip"), upload.clip.data)
        request["source"] = {"stored": "clip"}
    else:
        frames = []
        for i, part in enumerate(upload.frames):
            name = f"frame-{i:04d}"
            where.put(file_key(job.id, name), part.data, part.content_type or "application/octet-stream")
            frames.append({"file": name, "content_type": part.content_type, "name": part.name})
        request["frames"] = frames
    job.request = request
    create(job, where)
    return job


def check_media(upload, settings: Settings) -> None:
    """Media in the request that is plainly not a video (or the frames not images) is refused now,
    with the status /motion would answer, rather than accepted as a job bound to fail. A clip that
    opens but is damaged further in still fails in the job."""
    if upload.clip is not None:
        from .frames import Clip

        with tempfile.TemporaryDirectory(prefix="vimo-check-") as folder:
            path = Path(folder) / "clip"
            path.write_bytes(upload.clip.data)
            Clip(str(path), settings, threads=1).close()
    elif upload.frames:
        from .frames import open_frames

        open_frames(upload.frames, upload.options.frame_times(len(upload.frames)), settings, 80)


def view(job: Job, settings: Settings, base_url: str | None = None, where=None) -> dict:
    """The record as callers see it; when done, with ``montage_url``: presigned (S3), or the API's
    own /jobs/{id}/montage.jpg under ``base_url`` (files)."""
    if job.status == "running" and job.request.get("plan") and not job.progress:
        # On Step Functions each segment writes its own result: progress is how many there are.
        done = len((where or store(settings)).list(file_key(job.id, "segments/")))
        job.progress = min(0.99, done / len(job.request["plan"]))
    url = None
    if job.status == "done":
        url = (where or store(settings)).url(montage_key(job))
        if url is None and base_url:
            url = f"{base_url}/jobs/{job.id}/montage.jpg"
    return job.view(url)


# -- running one job --------------------------------------------------------------------------------------


def run(job_id: str, settings: Settings | None = None) -> Job:
    """Do one job here, start to end: analyse, render and store the montage, record the outcome,
    call back. (On AWS the same steps are a state machine's, see ``runners.run_step``.)

    Refusals of the media (not a video, too long, ...) end the job ``failed`` with the usual error;
    so does a bug (``internal_error``, logged). Never raises for what the job's input does.
    """
    from .runners import analyze_job

    settings = settings or Settings.from_env()
    where = store(settings)
    job = load(job_id, settings, where)
    if job.ended:
        return job
    begin(job, where)
    last = [time.monotonic()]

    def progress(fraction: float) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY and fraction < 1:
            job.progress = max(job.progress, min(1.0, fraction))
            save(job, where)
            last[0] = time.monotonic()

    with outcome(job, where):
        with tempfile.TemporaryDirectory(prefix="vimo-job-") as workdir:
            result, name, options = analyze_job(job, where, Path(workdir), settings, progress)
        finish(job, result, name, options, where)
    notify(job, settings, where)
    return job


def begin(job: Job, where) -> None:
    job.status, job.progress, job.error = "running", 0.0, None
    save(job, where)


class outcome:
    """``with outcome(job, where):`` the work of a job; a refusal or a bug inside ends it failed
    (and is not raised further), and then, or when ``last`` (the job's last step) ends well, the
    job's stored inputs are removed."""

    def __init__(self, job: Job, where, last: bool = True):
        self.job, self.where, self.last = job, where, last

    def __enter__(self):
        return self.job

    def __exit__(self, kind, error, trace) -> bool:
        if isinstance(error, ApiError):
            failed(self.job, error.to_dict()["error"], self.where)
        elif error is not None and isinstance(error, Exception):  # a bug: the job says so, the log has the traceback
            log.error("job %s crashed", self.job.id, exc_info=(kind, error, trace))
            failed(self.job, {"code": "internal_error", "message": f"The job failed on the server's side "
                                                                   f"({kind.__name__}); it has been logged."}, self.where)
        elif error is not None:
            return False  # KeyboardInterrupt, SystemExit: the job stays running, to be picked up again
        elif not self.last:
            return True
        try:
            self.where.remove_files(self.job.id)
        except ApiError:
            log.warning("job %s: its stored inputs could not be removed", self.job.id)
        return True


def finish(job: Job, result, name: str, options: Options, where) -> None:
    """A job done: its montage stored, its result recorded (and, for a camera's clip, written
    under results/)."""
    from .montage import contact_sheet

    montage = contact_sheet(result.events, result.video, name, options)
    where.put(montage_key(job), montage, JPEG)
    job.result = result.to_dict()
    if job.request.get("output"):
        where.put(f"{job.request['output']}.json", json.dumps({"job": job.id, **job.result}).encode(),
                  "application/json")
    job.status, job.progress = "done", 1.0
    save(job, where)


def failed(job: Job, error: dict, where) -> None:
    job.status, job.error = "failed", {"code": error.get("code", "internal_error"), "message": error.get("message", "")}
    save(job, where)


def notify(job: Job, settings: Settings, where) -> None:
    """Call the job's callback_url, if it has one, and record how that went."""
    if job.request.get("callback_url") and job.callback is None:
        from .callbacks import deliver

        job.callback = deliver(job.request["callback_url"], view(job, settings, job.request.get("base_url"), where),
                               settings)
        save(job, where)


def fail(job_id: str, settings: Settings, message: str, code: str = "internal_error") -> None:
    """Mark a job failed that could not finish by itself (its worker process died, a step of its
    state machine failed for good)."""
    where = store(settings)
    try:
        job = load(job_id, settings, where)
    except ApiError:
        return
    if not job.ended:
        failed(job, {"code": code, "message": message}, where)
