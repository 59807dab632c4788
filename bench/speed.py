"""How fast and how lean the analysis is, against a plain OpenCV ``grab()`` loop over the same file.

The original design skipped frames with ``grab()``; with inter-frame codecs the decoder still runs
for every frame, so that loop is the cost to beat. For each clip this prints, measured in one run
(the machine is shared and noisy, so only same-run ratios mean anything):

    clip, duration, resolution, keyframe interval, decode-loop time, analysis time, ratio,
    peak memory of the analysis, events F1 against the scene's ground truth, and the time it
    takes to decode nothing but the keyframes on the default 0.5 s step's grid, as a ratio of the
    decode loop (the floor of a keyframe pass that screened at the step instead of once a second)

and the time to import the handler module (a Lambda cold start). Each measurement runs in a fresh
process, so peak RSS is that of one analysis and nothing else. Clips are rendered once into
``bench/out/speed/`` (a few minutes each at 1080p) and reused.

The same scene is encoded twice per keyframe interval: with sensor grain that changes every frame
(``grain``) and with grain that stays put, as after a camera's temporal noise reduction (``3dnr``).
In the second, P-frames of a still scene are nearly empty, so keyframes are almost all of the
decoding: the hardest case for an analysis that decodes only keyframes.

    .venv/bin/python bench/speed.py [--only PART_OF_NAME ...] [--repeat N] [--render-only] [--before DIR]

``cpu ratio`` is the analysis's CPU time (every thread's: what a Lambda vCPU spends) over the decode
loop's, ``CPU s/h`` the analysis's CPU seconds per hour of footage. The analysis runs with the
settings it has on the Lambda function (1769 MB: one vCPU, so one decoder thread; ``ON_LAMBDA``),
the decode loop with OpenCV's defaults (a thread per core). With ``--before DIR`` the same
clips are also analysed by the vimo package in DIR (``git archive <rev> lambda_function | tar -x``)
in the same run, for a before/after on equal terms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "speed"
sys.path.insert(0, str(ROOT / "test_data"))
sys.path.insert(0, str(ROOT / "bench"))

from scenes import Scene, crossing, encode  # noqa: E402
from quality import cache_key, match, render_once, scores  # noqa: E402  (the same event matching and F1 as the quality benchmark)

class QuickScene(Scene):
    """``Scene`` with its sensor noise taken from a bank of precomputed frames: the encoder and the
    decoder see the same kind of picture, but a 1080p frame takes milliseconds to make instead of
    most of a second (nuisances are left out: this benchmark measures speed, quality has its own).
    Consecutive frames get different noise, as from a sensor."""

    frozen_noise = False

    def render(self, t: float):
        import numpy as np

        st = self._static
        if "noise_bank" not in st:
            rng = np.random.default_rng(self.seed)
            st["noise_bank"] = [rng.standard_normal((self.height, self.width, 1), np.float32) * self.noise
                                for _ in range(8)]
            st["background32"] = st["background"].astype(np.float32)
        frame = st["background32"].copy()
        for actor, poses in zip(self.actors, st["sprites"]):
            self._draw_actor(frame, actor, poses, t)
        frame += st["noise_bank"][0 if self.frozen_noise else round(t * self.fps) % len(st["noise_bank"])]
        return np.clip(frame, 0, 255).astype(np.uint8)


class DenoisedScene(QuickScene):
    """A camera with temporal noise reduction (most do it by day): the grain stays put from frame to
    frame, so a still background costs the P-frames almost nothing and nearly all the bits, and
    the decoding time, go to the keyframes. Hardest case for decoding only keyframes."""

    frozen_noise = True


# A 65 s 1080p25 street scene with four events: people near and far, a car, a slow walker.
ACTORS = (
    crossing("person", 0.30, 4.0, 7.0, 0.88, seed=1),
    crossing("car", 0.18, 19.0, 3.0, 0.97, left_to_right=False, seed=2),
    crossing("person", 0.10, 31.0, 11.0, 0.74, seed=3),
    crossing("person", 0.22, 51.0, 9.0, 0.92, left_to_right=False, seed=4),
)
STREET = dict(width=1920, height=1080, duration=65.0, fps=25.0, background="street", noise=3.0, seed=65,
              actors=ACTORS)
SENSORS = {"grain": QuickScene(**STREET), "3dnr": DenoisedScene(**STREET)}

# name -> (keyframe interval in frames or None for x264's default of 250, sensor)
CLIPS = {
    "1080p_x264_default_gop_grain": (None, "grain"),
    "1080p_gop_1s_grain": (25, "grain"),
    "1080p_gop_0.5s_grain": (12, "grain"),
    "1080p_x264_default_gop_3dnr": (None, "3dnr"),
    "1080p_gop_1s_3dnr": (25, "3dnr"),
    "1080p_gop_0.5s_3dnr": (12, "3dnr"),
}

# Camera footage (issue 16): mostly a still scene, motion in at most a quarter of the clip, keyframes
# every 2 s or 4 s (a camera's usual settings) or the encoder's long default, in H.264 and H.265, at
# 1080p and 4K; and a clip in motion all the time. 4K clips are shorter: they are slow to render
# and to decode here. Cameras denoise by day (``3dnr``); one clip keeps grain that changes every
# frame, where the packet sizes say nothing of motion and the analysis must fall back to decoding.
QUIET_ACTORS = (  # 15 s of motion in 60 s
    crossing("person", 0.30, 14.0, 8.0, 0.88, seed=1),
    crossing("person", 0.12, 41.0, 7.0, 0.74, seed=3),
)
QUIET_ACTORS_4K = (  # 6 s of motion in 24 s
    crossing("person", 0.30, 6.0, 4.5, 0.88, seed=1),
    crossing("car", 0.18, 17.0, 1.5, 0.97, left_to_right=False, seed=2),
)
BUSY_ACTORS = tuple(  # someone crossing at every moment
    crossing("person", 0.15 + 0.05 * (i % 3), 3.0 * i, 8.0, 0.75 + 0.07 * (i % 3), left_to_right=i % 2 == 0, seed=10 + i)
    for i in range(10))
CAMERA = dict(fps=25.0, background="street", noise=3.0, seed=65)
SENSORS.update({
    "quiet": DenoisedScene(width=1920, height=1080, duration=60.0, actors=QUIET_ACTORS, **CAMERA),
    "busy": DenoisedScene(width=1920, height=1080, duration=30.0, actors=BUSY_ACTORS, **CAMERA),
    "quiet_4k": DenoisedScene(width=3840, height=2160, duration=24.0, actors=QUIET_ACTORS_4K, **CAMERA),
    "busy_4k": DenoisedScene(width=3840, height=2160, duration=12.0, actors=BUSY_ACTORS, **CAMERA),
    "quiet_grain": QuickScene(width=1920, height=1080, duration=60.0, actors=QUIET_ACTORS, **CAMERA),
})
# Cameras encode at a variable bitrate with a cap (a still scene costs little, motion up to the cap):
# 1080p H.264 6 Mbit/s, H.265 half that; 4K H.264 16 Mbit/s, H.265 8.
BITRATES = {("libx264", 1080): 6_000_000, ("libx265", 1080): 3_000_000,
            ("libx264", 2160): 16_000_000, ("libx265", 2160): 8_000_000}
CAMERA_CLIPS = {  # name -> (keyframe interval in frames or None for the encoder's default (250), sensor, codec)
    "1080p_h264_gop_2s_quiet": (50, "quiet", "libx264"),
    "1080p_h264_gop_4s_quiet": (100, "quiet", "libx264"),
    "1080p_h264_default_gop_quiet": (None, "quiet", "libx264"),
    "1080p_h264_gop_2s_busy": (50, "busy", "libx264"),
    "4k_h265_gop_2s_quiet": (50, "quiet_4k", "libx265"),
    "4k_h265_gop_2s_busy": (50, "busy_4k", "libx265"),
    "1080p_h265_gop_2s_quiet": (50, "quiet", "libx265"),
    "1080p_h265_gop_4s_quiet": (100, "quiet", "libx265"),
    "4k_h264_gop_2s_quiet": (50, "quiet_4k", "libx264"),
    "4k_h265_gop_4s_quiet": (100, "quiet_4k", "libx265"),
    "4k_h264_gop_4s_quiet": (100, "quiet_4k", "libx264"),
    "1080p_h265_default_gop_quiet": (None, "quiet", "libx265"),
    "1080p_h264_gop_2s_quiet_grain": (50, "quiet_grain", "libx264"),
}
# The headline: CPU seconds of analysis per hour of footage, mostly still and always moving.
HEADLINE = {"1080p mostly still": "1080p_h264_gop_2s_quiet", "1080p always moving": "1080p_h264_gop_2s_busy",
            "4K mostly still": "4k_h265_gop_2s_quiet", "4K always moving": "4k_h265_gop_2s_busy"}

# Peak RSS from /proc (VmHWM): ru_maxrss survives execve on Linux, so a child would report the
# peak of the benchmark process that forked it.
PEAK_MB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"

DECODE_LOOP = """
import sys, time, cv2
started, cpu = time.perf_counter(), time.process_time()
capture = cv2.VideoCapture(sys.argv[1])
frames = 0
while capture.grab():
    frames += 1
print(time.perf_counter() - started, PEAK_MB, frames, time.process_time() - cpu)
""".replace("PEAK_MB", PEAK_MB)

ANALYSIS = """
import json, sys, time
from vimo.analysis import analyze_clip
from vimo.config import Options, Settings
started, cpu = time.perf_counter(), time.process_time()  # CPU time of every thread: what Lambda's vCPU spends
result = analyze_clip(sys.argv[1], Options(), Settings.from_env())
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": elapsed, "cpu": cpu, "rss_mb": PEAK_MB, "duration": result.video.duration,
                  "events": [e.to_dict() for e in result.events], "frames": result.video.frames_analyzed}))
""".replace("PEAK_MB", PEAK_MB)

KEYFRAMES = """
import sys, av
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    times = [float(p.pts * s.time_base) for p in c.demux(s) if p.is_keyframe and p.pts is not None]
print(sum(b - a for a, b in zip(times, times[1:])) / max(1, len(times) - 1))
"""

KEYS_ONLY = """
import sys, time, av
started = time.perf_counter()
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    next_time = 0.0
    for packet in container.demux(stream):
        if packet.is_keyframe and packet.pts is not None:
            t = float(packet.pts * stream.time_base)
            if t + 1e-6 >= next_time:
                stream.codec_context.decode(packet)
                next_time = (int(t / 0.5 + 1e-6) + 1) * 0.5
    stream.codec_context.decode(None)
print(time.perf_counter() - started)
"""

IMPORT = """
import time
started = time.perf_counter()
import vimo.app
print(time.perf_counter() - started)
"""


# The analysis runs with the settings it has on the Lambda function (1769 MB, one vCPU), which
# is what its CPU time costs there: one decoder thread (an older version decodes as it did there).
ON_LAMBDA = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}


def run(code: str, *args: str, code_dir: str | None = None, env: dict | None = None) -> str:
    """``code`` in a fresh interpreter; ``code_dir``: import vimo from there (another version of it)."""
    env = {**os.environ, **(env or {}), **({"PYTHONPATH": code_dir} if code_dir else {})}
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          cwd=ROOT, env=env).stdout.strip().splitlines()[-1]


def clip_path(name: str) -> Path:
    """The clip, rendered once per scene, encoding and renderer version (the quality benchmark's cache)."""
    path = OUT / f"{name}.mp4"
    if name in CLIPS:
        (gop, sensor), codec = CLIPS[name], "libx264"
    else:
        gop, sensor, codec = CAMERA_CLIPS[name]
    scene = SENSORS[sensor]
    # veryfast: a camera's hardware encoder makes similar streams (B-frames, few references), and
    # x264's default preset would take half an hour per clip here.
    # x265 ultrafast: as simple as a camera's hardware encoder, and quick enough to render 4K here.
    preset, cap = "ultrafast" if codec == "libx265" else "veryfast", BITRATES[codec, scene.height]
    encoding = dict(codec=codec, bitrate=cap, gop=gop, options={
        "preset": preset, "crf": "28" if codec == "libx265" else "23", "maxrate": str(cap), "bufsize": str(2 * cap)})
    if sensor == "quiet_grain":  # as a fixed bitrate (ABR): every bit the budget allows goes to the grain
        encoding = dict(codec=codec, bitrate=cap, gop=gop, options={"preset": preset})
    if name in CLIPS:  # as they were first rendered: their cache keys stay valid
        encoding = dict(codec="libx264", bitrate=6_000_000, gop=gop, options={"preset": "veryfast"})

    def render() -> dict:
        print(f"rendering {path.name} (once) ...", file=sys.stderr, flush=True)
        encode(scene, path, **encoding)
        return {}

    render_once(path, cache_key(scene, sorted(encoding.items(), key=str)), render)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="clips whose name contains this (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is kept")
    parser.add_argument("--render-only", action="store_true", help="render (cache) the clips, measure nothing")
    parser.add_argument("--before", metavar="DIR", help="also measure the vimo package found in DIR (e.g. an older "
                        "version's lambda_function), in the same run: its CPU ratio is the 'before' column")
    args = parser.parse_args()

    header = (f"{'clip':29} {'dur':>5} {'size':>9} {'key int':>7} {'decode':>7} {'analysis':>8} {'ratio':>6} "
              f"{'cpu ratio':>9} {'CPU s/h':>7} {'frames':>6} {'peak MB':>7} {'decode MB':>9} {'F1':>5} "
              f"{'keys only':>9}" + (f" {'before':>7} {'F1':>5}" if args.before else ""))
    rows, per_hour = [], {}
    for name in [*CLIPS, *CAMERA_CLIPS]:
        if args.only and not any(only in name for only in args.only):
            continue
        path = clip_path(name)
        if args.render_only:
            continue
        scene = SENSORS[CLIPS[name][1] if name in CLIPS else CAMERA_CLIPS[name][1]]
        truth = scene.truth()
        key_interval = float(run(KEYFRAMES, str(path)))
        loops = [tuple(map(float, run(DECODE_LOOP, str(path)).split())) for _ in range(args.repeat)]
        decode_s, decode_mb, decode_cpu = min(l[0] for l in loops), loops[0][1], min(l[3] for l in loops)
        analyses = [json.loads(run(ANALYSIS, str(path), env=ON_LAMBDA)) for _ in range(args.repeat)]
        keys_s = min(float(run(KEYS_ONLY, str(path))) for _ in range(args.repeat))
        analysis = min(analyses, key=lambda a: a["cpu"])
        tp = match(analysis["events"], truth)
        f1 = scores(tp, len(analysis["events"]) - tp, len(truth) - tp)[2]
        before = ""
        if args.before:
            old = min((json.loads(run(ANALYSIS, str(path), code_dir=args.before, env=ON_LAMBDA))
                       for _ in range(args.repeat)),
                      key=lambda a: a["cpu"])
            old_tp = match(old["events"], truth)
            before = (f" {old['cpu'] / decode_cpu:6.2f}x "
                      f"{scores(old_tp, len(old['events']) - old_tp, len(truth) - old_tp)[2]:5.2f}")
        per_hour[name] = analysis["cpu"] / scene.duration * 3600
        rows.append(f"{name:29} {scene.duration:5.0f} {scene.width}x{scene.height:<4} {key_interval:6.2f}s "
                    f"{decode_s:6.2f}s {analysis['seconds']:7.2f}s {analysis['seconds'] / decode_s:5.2f}x "
                    f"{analysis['cpu'] / decode_cpu:8.2f}x {per_hour[name]:7.0f} {analysis['frames']:6d} "
                    f"{analysis['rss_mb']:7.0f} {decode_mb:9.0f} {f1:5.2f} {keys_s / decode_s:8.2f}x{before}")
        print(rows[-1], file=sys.stderr, flush=True)
    if args.render_only:
        return
    cold = min(float(run(IMPORT)) for _ in range(3))
    print(header)
    print("\n".join(rows))
    print(f"import vimo.app (cold start, best of 3): {cold:.2f}s")
    for what, name in HEADLINE.items():
        if name in per_hour:
            print(f"CPU seconds per hour of footage, {what} ({name}): {per_hour[name]:.0f}")


if __name__ == "__main__":
    main()
