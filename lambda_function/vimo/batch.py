"""Many clips at once (``vimo analyze a.mp4 b.mp4 recordings/``): each analysed on its own, on all
cores, with progress bars on a terminal. Only the command line uses this module.

How the clips share the cores is decided once per batch, so that pools never nest: with at least
as many clips as workers, a process pool analyses one clip per worker, each in one pass decoded on
one core; with fewer (one long recording, two cameras), the clips are taken one after another and
each may be cut into segments over all cores by ``runners.analyze``. A clip that fails gets its
error in its own line and the rest go on.
"""

from __future__ import annotations

import concurrent.futures
import glob
import math
import multiprocessing
import os
import queue
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import Options, Settings
from .errors import ApiError

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
# What a folder is searched for (a file named on the command line is taken whatever its suffix).
CLIP_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv", ".3gp",
                 ".mpg", ".mpeg", ".wmv", ".asf", ".h264", ".h265", ".hevc"}


class UsageError(Exception):
    """The command line itself is wrong (exit status 2), as opposed to a clip that fails (1)."""


def expand(paths: Sequence[str]) -> list[Path]:
    """Files, folders (searched recursively for clips, or else images, in name order) and globs
    (quoted ones too, as a shell on Windows leaves them) -> the files, each once, in order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            # its clips; a folder of images only is a burst (the sheets written next to clips are not)
            found = [p for p in inside if p.suffix.lower() in CLIP_SUFFIXES] or \
                [p for p in inside if p.suffix.lower() in FRAME_SUFFIXES]
            if not found:
                raise UsageError(f"{raw}: no clips or images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(raw):
            matched = sorted(Path(p) for p in glob.glob(raw, recursive=True) if Path(p).is_file())
            if not matched:
                raise UsageError(f"{raw}: matches no file")
            files.extend(matched)
        else:
            raise UsageError(f"{raw}: no such file or folder")
    seen: set[Path] = set()
    return [p for p in files if not (p.resolve() in seen or seen.add(p.resolve()))]


def is_burst(files: Sequence[Path]) -> bool:
    """Whether the files are a burst of stills (all images) rather than clips (none); a mix is an error."""
    images = [p for p in files if p.suffix.lower() in FRAME_SUFFIXES]
    if images and len(images) < len(files):
        clip = next(p for p in files if p.suffix.lower() not in FRAME_SUFFIXES)
        raise UsageError(f"cannot mix clips and images ({clip.name} and {images[0].name}): images are "
                         "analysed together as one burst of frames, clips each on their own; run them apart")
    return bool(images)


def sheet_paths(clips: Sequence[Path], output_dir: Path) -> list[Path]:
    """One contact sheet per clip in ``output_dir``, named after the clip (``door.mp4`` -> ``door.jpg``);
    clips of the same name in different folders get their folder's name in front (``cam1-0001.jpg``)."""
    stems = [clip.stem for clip in clips]
    names = ["-".join(part for part in (clip.parent.name, clip.stem) if part) if stems.count(clip.stem) > 1
             else clip.stem for clip in clips]
    seen: dict[str, int] = {}
    paths = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        paths.append(output_dir / (f"{name}-{seen[name]}.jpg" if names.count(name) > 1 else f"{name}.jpg"))
    return paths


def analyze_one(clip: Path, sheet: Path | None, options: Options, settings: Settings, fan_out: bool = True,
                progress: Callable[[float], None] | None = None) -> dict:
    """One clip analysed and its sheet written: its JSON line, ``{"file", ...the API's JSON, "sheet"}``,
    or ``{"file", "error": {"code", "message"}}`` if it could not be."""
    from .analysis import analyze_clip
    from .montage import contact_sheet
    from .runners import analyze

    try:
        if fan_out:
            result = analyze(clip, options, settings, progress=progress)
        else:  # a worker of the batch's pool: one pass, one decoder thread
            result = analyze_clip(clip, options, settings, threads=1, progress=progress)
        line = {"file": str(clip), **result.to_dict()}
        if sheet is not None:
            sheet.write_bytes(contact_sheet(result.events, result.video, clip.name, options))
            line["sheet"] = str(sheet)
    except ApiError as error:
        return {"file": str(clip), **error.to_dict()}
    except OSError as error:  # the sheet could not be written, the clip vanished...
        return {"file": str(clip), "error": {"code": "os_error", "message": str(error)}}
    except Exception as error:  # a bug: that clip fails as the API would answer 500, the others go on
        return {"file": str(clip), "error": {"code": "internal_error", "message": f"{type(error).__name__}: {error}"}}
    return line


def run(clips: Sequence[Path], sheets: Sequence[Path | None], options: Options, settings: Settings, workers: int,
        bars: "Bars | None" = None, emit: Callable[[dict], None] = lambda line: None) -> list[dict]:
    """Every clip's line, in the clips' order; ``emit`` is called with each as it is done."""
    lines: list[dict | None] = [None] * len(clips)
    if bars is not None:
        bars.begin([duration(clip) for clip in clips], [clip.name for clip in clips])
    if len(clips) < workers or workers <= 1:
        for index, (clip, sheet) in enumerate(zip(clips, sheets)):
            progress = None if bars is None else (lambda seconds, index=index: bars.advance(index, seconds))
            lines[index] = analyze_one(clip, sheet, options, settings, fan_out=True, progress=progress)
            _done(bars, index, lines[index], emit)
        return lines
    spawn = multiprocessing.get_context("spawn")  # not fork: see runners.run_local
    reports = spawn.Queue() if bars is not None else None
    pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(clips)), mp_context=spawn,
                                                  initializer=_report_to, initargs=(reports,))
    try:  # on Ctrl-C (which the workers get too) the clips not started are dropped
        futures = {pool.submit(_pool_one, index, clip, sheet, options, settings): index
                   for index, (clip, sheet) in enumerate(zip(clips, sheets))}
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=0.2,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            _relay(reports, bars)
            for future in sorted(done, key=futures.get):
                index = futures[future]
                try:
                    lines[index] = future.result()
                except Exception as error:  # a worker died (out of memory, killed): that clip failed
                    lines[index] = {"file": str(clips[index]),
                                    "error": {"code": "worker_failed", "message": f"{type(error).__name__}: {error}"}}
                _done(bars, index, lines[index], emit)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return lines


def _done(bars, index: int, line: dict, emit) -> None:
    if bars is not None:
        bars.finish(index)
    emit(line)


def duration(clip: Path) -> float:
    """The length a clip's headers claim (0 if they do not say, or it is not a video): the bars' totals."""
    import av

    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return (container.duration or 0) / av.time_base
    except Exception:
        return 0.0


# -- the pool's side -----------------------------------------------------------------------------------

_reports = None


def _report_to(reports) -> None:
    global _reports
    _reports = reports


def _pool_one(index: int, clip: Path, sheet: Path | None, options: Options, settings: Settings) -> dict:
    from .runners import reporter

    progress = None if _reports is None else reporter(_reports, index)
    return analyze_one(clip, sheet, options, settings, fan_out=False, progress=progress)


def _relay(reports, bars) -> None:
    while reports is not None:
        try:
            index, seconds = reports.get_nowait()
        except queue.Empty:
            return
        bars.advance(index, seconds)


# -- progress bars -------------------------------------------------------------------------------------


class Bars:
    """tqdm bars on stderr: one for the whole batch (when there are several clips) and one per clip
    being analysed, each with the rate in seconds of video per second and the time left."""

    FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of video [{elapsed}<{remaining}, {rate_fmt}]"

    def __init__(self, file=None):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.file = file or sys.stderr
        self.total = None
        self.clips: dict[int, object] = {}
        self.position: dict[int, float] = {}

    def begin(self, durations: list[float], names: list[str]) -> None:
        self.durations, self.names = durations, names
        if len(durations) > 1:
            self.total = self._bar(f"{len(durations)} clips", sum(durations), leave=True)

    def _bar(self, desc: str, total: float, leave: bool):
        # follow the terminal's size as it is resized; one that says it has none (a bare pseudo-terminal)
        # gets 80x24, else tqdm draws nothing at all
        try:
            sized = os.get_terminal_size(self.file.fileno()).columns > 0
        except (OSError, ValueError, AttributeError):
            sized = False
        return self._tqdm(total=total or None, desc=desc, unit="s", leave=leave, file=self.file,
                          bar_format=self.FORMAT if total else None, dynamic_ncols=sized,
                          ncols=None if sized else 80, nrows=None if sized else 24, mininterval=0.2)

    def advance(self, index: int, seconds: float) -> None:
        if index not in self.clips:
            self.clips[index] = self._bar(self.names[index], self.durations[index], leave=self.total is None)
            self.position[index] = 0.0
        seconds = min(seconds, self.durations[index] or math.inf)
        delta, self.position[index] = seconds - self.position[index], seconds
        self.clips[index].update(delta)
        if self.total is not None:
            self.total.update(delta)

    def finish(self, index: int) -> None:
        """A clip is done (or failed): its bar goes; the batch's counts all of its length as done."""
        done = self.durations[index] or self.position.get(index, 0.0)
        if index in self.clips:
            self.advance(index, done)
            self.clips.pop(index).close()
        elif self.total is not None:  # failed before it started: no bar of its own
            self.total.update(done)

    def write(self, text: str, file=None) -> None:
        """A line printed above the bars, which are redrawn below it."""
        self._tqdm.write(text, file=file or sys.stdout)

    def close(self) -> None:
        for bar in self.clips.values():
            bar.close()
        if self.total is not None:
            self.total.close()
