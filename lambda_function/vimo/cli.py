"""The `vimo` command: analyse files on this machine, or serve the API locally.

``vimo analyze`` builds the same Upload a request would and prints exactly the JSON the API
returns, so scripts can use either interchangeably.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import OPTION_SPECS, Options, Settings
from .errors import ApiError

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vimo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser("analyze", help="analyse a clip, or a list of frames in order")
    analyze.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze.add_argument("--json", action="store_true", help="print the JSON only; write no montage")
    analyze.add_argument("-o", "--output", type=Path, help="write the contact sheet here (default: montage.jpg)")
    for name, spec in OPTION_SPECS.items():
        if name not in ("format", "delivery"):
            analyze.add_argument(f"--{name}", help=f"{spec.doc} (default: {getattr(Options(), name)})",
                                 **({"nargs": "?", "const": "true"} if spec.kind is bool else {}))

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
        return 0
    try:
        return _analyze(args)
    except ApiError as error:
        print(json.dumps(error.to_dict()), file=sys.stderr)
        return 2


def _analyze(args) -> int:
    from .analysis import analyze_frames
    from .montage import render
    from .segments import analyze
    from .upload import Part, Upload

    fields = {name: getattr(args, name) for name in OPTION_SPECS if getattr(args, name, None) is not None}
    options = Options.parse(fields)
    settings = Settings.from_env()
    if len(args.files) == 1 and args.files[0].suffix.lower() not in FRAME_SUFFIXES:
        # A clip on disk is analysed where it lies: an hour of footage is neither read into memory
        # nor copied; long ones are cut into segments over all cores.
        clip = args.files[0]
        if not clip.is_file():
            raise ApiError(400, "missing_part", f"No such file: {clip}")
        name, result = clip.name, analyze(clip, options, settings)
    else:
        frames = tuple(Part(path.read_bytes(), "", path.name) for path in args.files)
        if options.timestamps is not None and len(options.timestamps) != len(frames):
            raise ApiError(400, "bad_option", f"--timestamps lists {len(options.timestamps)} times for "
                                              f"{len(frames)} frames.")
        upload = Upload(options=options, frames=frames)
        name, result = upload.name, analyze_frames(upload, settings)
    print(json.dumps(result.to_dict(), indent=2))
    if not args.json:
        output = args.output or Path("montage.jpg")
        output.write_bytes(render(result.events, result.video, name, options.columns, options.max_tiles,
                                  options.tile_width))
        print(f"montage: {output} ({len(result.events)} events)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
