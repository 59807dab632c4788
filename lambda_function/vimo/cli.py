"""The `vimo` command: analyse recordings on this machine, follow a live camera, or serve the API locally.

``vimo analyze`` builds the same options a request would and prints, per clip, exactly the JSON the
API returns (with the clip's ``file``), so scripts can use either interchangeably. Exit status: 0 when
everything was analysed, 1 when a clip (or a stream) failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from . import __version__
from .config import OPTION_SPECS, Options, Settings, parse_polygons
from .errors import ApiError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C in vimo analyze, as shells report it (vimo watch stops cleanly: 0)
EPILOG = ("exit status: 0 all done, 1 a clip or the stream failed (the others are still analysed), "
          "2 usage error (unknown flag, bad option value, no such file)")
# Per-request options that mean nothing on the command line: the output is chosen with --json/-o.
NOT_FLAGS = {"format", "delivery"}
# ... and those that only apply to a burst of frames, which a live stream is not.
BURST_ONLY = {"interval", "timestamps"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vimo", description=__doc__.splitlines()[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"vimo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze", help="analyse clips (files, folders, globs), or a burst of images in order", epilog=EPILOG,
        description="Analyse each clip on its own, on all cores, and write a contact sheet per clip; or analyse "
                    "images together as one burst of frames, in the order given.")
    analyze.add_argument("files", nargs="+", metavar="PATH", help="clips, folders of clips (searched recursively), "
                                                                 "globs; or images (one burst)")
    analyze.add_argument("--json", action="store_true",
                         help="print one JSON line per clip (the API's JSON with \"file\"); no sheets unless "
                              "-o or --output-dir is given")
    analyze.add_argument("-o", "--output", type=Path, help="the contact sheet of a single clip or burst, here")
    analyze.add_argument("-d", "--output-dir", type=Path,
                         help="write each clip's sheet here, named after the clip (default: the current folder)")
    analyze.add_argument("-j", "--workers", type=_positive, default=0,
                         help="clips (or segments of a long clip) analysed at once (default: one per core)")
    _quiet(analyze)
    add_option_flags(analyze, NOT_FLAGS)

    watch = commands.add_parser(
        "watch", help="follow a live camera (rtsp://, an HLS playlist, a growing file) and report events as "
                      "they end", epilog=EPILOG,
        description="Follow a live source in real time; print each motion event when it ends; write a contact "
                    "sheet of each period's events. Ctrl-C stops, reporting any event still open.")
    watch.add_argument("source", metavar="SOURCE", help="rtsp://..., http(s)://.../live.m3u8, or a file being written")
    watch.add_argument("--json", action="store_true", help="one JSON line per event on stdout, nothing else")
    watch.add_argument("--webhook", metavar="URL",
                       help="POST each event's JSON here (signed with $VIMO_WEBHOOK_SECRET, if set: header "
                            "X-Vimo-Signature: sha256=<HMAC of the body>)")
    watch.add_argument("--sheet-every", default="1h", type=_duration, metavar="PERIOD",
                       help="write a contact sheet of each period's events, e.g. 30m, 1h, 1d (default: 1h; "
                            "0 for none)")
    watch.add_argument("-d", "--output-dir", type=Path, default=Path("."),
                       help="where the sheets go (default: the current folder)")
    watch.add_argument("--read-timeout", type=_positive_float, default=10.0, metavar="SECONDS",
                       help="seconds without a frame after which the stream counts as dropped and is "
                            "reconnected (default: 10)")
    _quiet(watch)
    add_option_flags(watch, NOT_FLAGS | BURST_ONLY)

    serve = commands.add_parser("serve", help="serve the API on this machine, as API Gateway would")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", 3000)))
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    serve.add_argument("--api-key", default=os.environ.get("VIMO_API_KEY") or None,
                       help="require this x-api-key on POST /motion and /uploads, as the deployed API does "
                            "(default: $VIMO_API_KEY; none)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        from .gateway import serve as run

        run(args.host, args.port, args.workers, args.api_key)
        return EXIT_OK
    from .batch import UsageError

    try:
        options = Options.parse(_option_fields(args))
        if args.command == "watch":
            from .watch import watch as follow

            return follow(args, options, Settings.from_env())
        return _analyze(args, options)
    except (UsageError, ApiError) as error:
        print(f"vimo {args.command}: error: {getattr(error, 'message', error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"vimo {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vimo ... | head -1`: whoever read stdout has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def add_option_flags(parser: argparse.ArgumentParser, skip: set[str]) -> None:
    """One flag per per-request option of ``config.OPTION_SPECS`` (so that new options appear by
    themselves): ``--tile-width``, with the API's spelling ``--tile_width`` kept as a hidden alias."""
    group = parser.add_argument_group("analysis options (as the API's)")
    defaults = Options()
    for name, spec in OPTION_SPECS.items():
        if name in skip:
            continue
        default = getattr(defaults, name, None)
        doc = spec.doc.replace("`", "").replace("%", "%%")
        if spec.kind == "polygons":  # --region / --exclude, each repeatable: one polygon each
            flag = "--region" if name == "regions" else f"--{name}"
            group.add_argument(flag, dest=name, action="append", metavar="POLYGON",
                               help=doc + ' On the command line: "x,y x,y x,y ..." (or the JSON form); repeat '
                                          "for more polygons.")
            continue
        switch = {"nargs": "?", "const": "true"} if spec.kind is bool else {}  # --timeline, --boxes false
        group.add_argument("--" + name.replace("_", "-"), dest=name, metavar=_metavar(spec),
                           help=doc + ("" if default is None else f" (default: {default})"), **switch)
        if "_" in name:
            group.add_argument(f"--{name}", dest=name, help=argparse.SUPPRESS, **switch)


def _option_fields(args) -> dict:
    """The per-request options given as flags, as the API's raw fields (repeated polygon flags
    joined into the API's JSON list)."""
    fields = {name: getattr(args, name) for name in OPTION_SPECS if getattr(args, name, None) is not None}
    for name, spec in OPTION_SPECS.items():
        if spec.kind == "polygons" and fields.get(name):
            fields[name] = json.dumps([p for value in fields[name] for p in parse_polygons(name, value.strip())])
    return fields


def _metavar(spec) -> str:
    if isinstance(spec.kind, tuple):
        return "{" + ",".join(spec.kind) + "}"
    return {int: "N", float: "X", list: "T,T,...", bool: "true|false"}.get(spec.kind, "VALUE")


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or notes on stderr (bars are only shown on a terminal anyway)")


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {raw}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {raw}")
    return value


def _duration(raw: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``1d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = raw.strip().lower()
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (try 30m, 1h, 1d)") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r}")
    return value


# -- vimo analyze --------------------------------------------------------------------------------------


def _analyze(args, options: Options) -> int:
    from .batch import Bars, UsageError, expand, is_burst, run, sheet_paths
    from .runners import local_workers

    files = expand(args.files)
    burst = is_burst(files)
    if args.output is not None and args.output_dir is not None:
        raise UsageError("give -o (one sheet) or --output-dir (a sheet per clip), not both")
    if args.output is not None and not burst and len(files) > 1:
        raise UsageError(f"-o names one sheet, and there are {len(files)} clips: use --output-dir")
    write = not args.json or args.output is not None or args.output_dir is not None
    output_dir = args.output_dir or Path(".")
    if write and args.output is None:
        output_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    if burst:
        lines = [_burst(files, options, settings, (args.output or output_dir / "montage.jpg") if write else None)]
        _print(args, lines[0], None)
    else:
        workers = args.workers or local_workers(settings)
        sheets = [args.output] if args.output else sheet_paths(files, output_dir) if write else [None] * len(files)
        bars = Bars() if sys.stderr.isatty() and not args.quiet else None
        try:
            lines = run(files, sheets, options, dataclasses.replace(settings, workers=workers), workers, bars,
                        emit=lambda line: _print(args, line, bars))
        finally:
            if bars is not None:
                bars.close()
    if not args.json:
        print(_table(lines))
    return EXIT_FAILED if any("error" in line for line in lines) else EXIT_OK


def _burst(files: list[Path], options: Options, settings: Settings, sheet: Path | None) -> dict:
    """Images as one burst of frames, in the order given, as the API takes them."""
    from .analysis import analyze_frames
    from .batch import UsageError
    from .montage import contact_sheet
    from .upload import Part, Upload

    if options.timestamps is not None and len(options.timestamps) != len(files):
        raise UsageError(f"--timestamps lists {len(options.timestamps)} times for {len(files)} frames")
    frames = tuple(Part(path.read_bytes(), "", path.name) for path in files)
    upload = Upload(options=options, frames=frames)
    line = {"file": str(files[0]) if len(files) == 1 else upload.name, "files": [str(p) for p in files]}
    try:
        result = analyze_frames(upload, settings)
    except ApiError as error:
        return {**line, **error.to_dict()}
    line.update(result.to_dict())
    if sheet is not None:
        sheet.write_bytes(contact_sheet(result.events, result.video, upload.name, options))
        line["sheet"] = str(sheet)
    return line


def _print(args, line: dict, bars) -> None:
    """A clip is done: its JSON line on stdout with --json; else a failure is told on stderr at once
    (the table comes at the end)."""
    if args.json:
        text, out = json.dumps(line), sys.stdout
    elif "error" in line:
        text, out = f"vimo: {line['file']}: {line['error']['code']}: {line['error']['message']}", sys.stderr
    else:
        return
    if bars is not None:
        bars.write(text, out)
    else:
        print(text, file=out, flush=True)


def _table(lines: list[dict]) -> str:
    """clip, duration, events, time and sheet (or the error) of each clip, and a summary line."""
    from .events import hhmmss

    rows = [("clip", "duration", "events", "time", "sheet")]
    for line in lines:
        name = Path(line["file"]).name
        if "error" in line:
            rows.append((name, "-", "-", "-", f"FAILED {line['error']['code']}: {line['error']['message']}"))
        else:
            rows.append((name, hhmmss(line["video"]["duration"]), str(len(line["events"])),
                         f"{line['elapsed_ms'] / 1000:.1f}s", line.get("sheet", "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    text = ["  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:4], widths[1:])]
                      + [row[4]]) for row in rows]
    failed = sum("error" in line for line in lines)
    events = sum(len(line.get("events", ())) for line in lines)
    text.append(f"{len(lines)} clip{'s' * (len(lines) != 1)}, {events} event{'s' * (events != 1)}"
                + (f", {failed} failed" if failed else ""))
    return "\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
