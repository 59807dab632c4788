"""Media -> time-stamped samples: small gray frames to compare, and the picture behind each.

Decoding is nearly all the cost of a request, so this module decides how little of a clip to
decode. It offers two ways through a clip, and ``analysis`` picks:

* ``Clip.keyframe_samples``: demux every packet but decode only the keyframes that land on the
  sampling grid. Cheap for any codec, and all that is needed when keyframes come often.
* ``Clip.samples``: decode a span fully, except for frames no other frame depends on
  (FFmpeg's ``skip_frame=NONREF``), and keep one frame per step.

and ``Clip.packets``, which decodes nothing: every packet's time, size and whether it is a
keyframe, from which ``screen`` tells where something may have moved.

Times are presentation timestamps relative to the first frame, never frame index / nominal rate,
so variable-frame-rate clips and files with wrong headers still get the right HH:MM:SS. Only the
samples' small gray copies are made eagerly; the picture for a tile is made from the decoded frame
when an event asks for it, so at most a few full frames are alive at once.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import av
from av.video.reformatter import VideoReformatter
import numpy as np
from PIL import Image, ImageOps

from . import clock
from .config import Settings
from .errors import too_large, unsupported
from .upload import Part

# Width of the gray copies that motion is measured on. Large enough that a person 3 % of the
# picture's height is eight pixels tall; small enough that averaging away sensor noise and
# comparing two frames costs a few milliseconds.
ANALYSIS_WIDTH = 480
# Frames this wide are decoded without the deblocking filter (FFmpeg's ``skip_loop_filter``):
# it smooths the edges of the codec's blocks, which the analysis's fourfold (and more) shrinking
# averages away, as does any tile's (at most 1280 wide), and it is a sixth of H.264's decoding.
SKIP_LOOP_FILTER_WIDTH = 1920
# Streams probed without decoding when a clip is opened (a camera's file has one to three).
PROBED_STREAMS = 8

# Seconds FFmpeg waits for data from a URL before giving up.
READ_TIMEOUT = 15

_ROTATE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}


@dataclass(frozen=True)
class Packet:
    """What the demuxer says about a frame without decoding it."""

    time: float  # presentation time, clip time
    size: int  # bytes
    key: bool


@dataclass(frozen=True)
class VideoInfo:
    """What the JSON's ``video`` object and the montage header say about the media."""

    duration: float
    fps: float | None
    width: int  # as displayed, after rotation
    height: int
    codec: str
    frames_analyzed: int = 0
    # When the first frame was recorded (ISO 8601, in the offset it is shown in), if known: see clock.
    recorded_at: str | None = None

    def to_dict(self) -> dict:
        result = {"duration": round(self.duration, 3), "fps": None if self.fps is None else round(self.fps, 3),
                  "width": self.width, "height": self.height, "codec": self.codec,
                  "frames_analyzed": self.frames_analyzed}
        if self.recorded_at is not None:
            result["recorded_at"] = self.recorded_at
        return result


class Sample:
    """One sampled frame: its time, a small gray copy to compare, and the full picture on request."""

    __slots__ = ("time", "gray", "rotation", "_source", "_reformatter", "colour")

    def __init__(self, time: float, gray: np.ndarray, source, rotation: int = 0, reformatter=None,
                 colour: float | None = None):
        self.time = time
        self.gray = gray
        self.rotation = rotation  # degrees counter-clockwise that turn the picture upright
        self._source = source  # av.VideoFrame or PIL.Image, until ``release``
        self._reformatter = reformatter  # the clip's, so that scaling contexts are reused
        # How colourful the picture is (see ``colourfulness``): an infrared night mode turns it grey
        # in one frame. None when it could not be measured.
        self.colour = colour

    def picture(self, width: int) -> Image.Image:
        """The frame, upright, ``width`` pixels wide (or its own width, if smaller)."""
        source = self._source
        upright_width = source.height if self.rotation in (90, 270) else source.width
        scale = min(1.0, width / upright_width)
        w, h = max(2, round(source.width * scale)), max(2, round(source.height * scale))
        if isinstance(source, av.VideoFrame):
            image = self._reformatter.reformat(source, width=w, height=h, format="rgb24",
                                               interpolation="AREA").to_image()
        else:
            image = source.resize((w, h), Image.Resampling.BOX) if scale < 1 else source.copy()
        if self.rotation in _ROTATE:
            image = image.transpose(_ROTATE[self.rotation])
        return image

    def shrink(self, width: int) -> None:
        """Keep the picture only as large as a tile ``width`` wide: a sample that must wait
        (see ``motion.detect``) should not hold a full decoded frame."""
        if self._source is not None:
            self._source, self.rotation = self.picture(width), 0

    def release(self) -> None:
        """Drop the full frame; only the gray copy and time remain."""
        self._source = None


_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p"}


def colourfulness(source) -> float | None:
    """The mean distance of a picture's chroma from grey (8-bit Cb/Cr units), from a sparse grid of
    its chroma planes: a scalar per sample, so that no colour copy is kept. A colour camera's
    street scene is several units from grey, its infrared night mode well under one."""
    if isinstance(source, Image.Image):
        small = source.reduce(max(1, min(source.size) // 32)).convert("YCbCr")
        chroma = np.asarray(small, np.float32)[..., 1:]
        return float(np.abs(chroma - 128).mean())
    if source.format.name not in _PLANAR_YUV:
        return None  # gray, 10-bit or packed formats: nothing to say, nothing is set aside for colour
    spread = 0.0
    for plane in source.planes[1:3]:
        every = max(1, plane.width // 48)
        values = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[::every, :plane.width:every]
        spread += float(np.abs(values.astype(np.int16) - 128).mean())
    return spread / 2


def next_on_grid(t: float, step: float) -> float:
    """The first multiple of ``step`` after ``t``: grids stay aligned however a clip is split."""
    return (math.floor(t / step + 1e-6) + 1) * step


def analysis_size(width: int, height: int) -> tuple[int, int]:
    w = max(2, min(ANALYSIS_WIDTH, width - width % 2))
    h = max(2, round(w * height / width / 2) * 2)
    return w, h


class Clip:
    """An opened video file; refuses what is not a decodable video before any analysis starts."""

    def __init__(self, path: str, settings: Settings, threads: int | None = None):
        self._path = path
        self._settings = settings
        # Decoder threads (0 lets FFmpeg use every core); by default the settings'.
        self._threads = settings.decoder_threads if threads is None else threads
        self._container = self._open()
        self._untouched = True  # nothing demuxed since the container was opened: no need to rewind
        try:
            self._stream = self._check_stream()
        except BaseException:
            self._container.close()
            raise
        self.keyframe_interval = math.inf  # measured by keyframe_samples
        self.frames_decoded = 0  # every frame the decoder gave back: the work done
        # swscale contexts cost more to set up than to run: one for gray copies, one for pictures.
        self._gray, self._pictures = VideoReformatter(), VideoReformatter()

    def _open(self, decode_to_probe: bool = False):
        """The container, probed without decoding (FFmpeg decodes the first frames to learn what the
        headers already say, a 4K keyframe's cost at every opening), unless ``decode_to_probe``, or
        the headers lack the picture's size (a stream with no global header) or the time it starts
        (H.264 with B-frames in Matroska, which stores no decoding times)."""
        try:
            # Over HTTP (a presigned S3 URL), a stalled read fails after READ_TIMEOUT instead of hanging.
            remote = self._path.startswith(("http://", "https://"))
            options = {"rw_timeout": str(READ_TIMEOUT * 1_000_000)} if remote else {}
            probe = [] if decode_to_probe else [{"skip_frame": "all"}] * PROBED_STREAMS
            container = av.open(self._path, options=options, stream_options=probe)
            video = container.streams.video[0] if container.streams.video else None
            if not decode_to_probe and video and not (video.codec_context.width and video.start_time is not None):
                container.close()
                return self._open(decode_to_probe=True)
        except (av.FFmpegError, UnicodeDecodeError, ValueError):
            raise unsupported("not_a_video", "The upload is not a video that can be decoded "
                                             "(MP4, MOV, MKV, WebM or AVI with a common codec).") from None
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            container.close()
            raise unsupported("image_as_clip", "The upload is a still image, not a video: send images as 'frame' "
                                               "parts (-F frame=@1.jpg -F frame=@2.jpg).")
        return container

    def _check_stream(self):
        if not self._container.streams.video:
            raise unsupported("no_video_stream", "The upload has no video stream.")
        stream = self._container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise unsupported("not_a_video", "The video stream has no picture size: the file is damaged or truncated.")
        if ctx.width * ctx.height > self._settings.max_pixels:
            raise too_large(f"The video is {ctx.width}x{ctx.height}; at most {self._settings.max_pixels:,} pixels "
                            "per frame are accepted.")
        if self.duration_hint(stream) > self._settings.max_duration:
            raise too_large(f"The video claims to last {self.duration_hint(stream) / 3600:.1f} hours; at most "
                            f"{self._settings.max_duration / 3600:g} hours are accepted.")
        self._set_up_decoder(stream)
        return stream

    def _set_up_decoder(self, stream) -> None:
        if self._threads == 1:
            stream.thread_type = "NONE"
        else:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self._threads
        if stream.codec_context.width >= SKIP_LOOP_FILTER_WIDTH:
            stream.codec_context.options = {**stream.codec_context.options, "skip_loop_filter": "all"}

    def duration_hint(self, stream=None) -> float:
        """The duration the headers claim; only a hint, the samples' timestamps are the truth."""
        stream = stream or self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if self._container.duration:
            return self._container.duration / av.time_base
        return 0.0

    def indexed_keyframe_interval(self) -> float | None:
        """The median seconds between keyframes by the container's index, when it lists (nearly)
        every frame, as MP4 and MOV do; None when it does not say (Matroska's cues list a few)."""
        entries = self._stream.index_entries
        frames = self._stream.frames
        if not entries or not frames or len(entries) < 0.9 * frames:
            return None
        keys = [entry.timestamp for entry in entries if entry.is_keyframe]
        if len(keys) < 2:
            return None
        return float(np.median(np.diff(keys)) * self._stream.time_base)

    def recording_time(self):
        """When the clip was recorded, by its container's tags (see ``clock``), or None."""
        return clock.container_time(self._container.metadata, self._stream.metadata)

    @property
    def fps(self) -> float | None:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    @property
    def codec(self) -> str:
        return self._stream.codec_context.name

    @property
    def size(self) -> tuple[int, int]:
        ctx = self._stream.codec_context
        return ctx.width, ctx.height

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the two ways through a clip -------------------------------------------------------------

    def keyframe_samples(self, step: float, start: float = 0.0, end: float = math.inf,
                         baseline: bool = True, at_once: bool = False) -> Iterator[Sample]:
        """The first keyframe at or after each multiple of ``step`` from ``start`` to ``end``, decoding
        no other packet but, with ``baseline``, the last keyframe before ``start`` (so that a clip
        cut into segments compares every pair of neighbouring keyframes exactly once; re-timing an
        edge from the keyframes around it needs no comparison before the first).

        Also measures ``keyframe_interval`` (median seconds between keyframes), which tells
        ``analysis`` whether events can be found among keyframes alone. With ``at_once``, each
        keyframe is yielded as soon as it is decoded: a decoder working on several frames at a time
        (or reordering them) would otherwise decode a few keyframes more before giving the first
        back, wasted when the caller stops early (a screening check that fails).
        """
        self._seek(start)
        self._stream.codec_context.skip_frame = "DEFAULT"
        origin = self._origin()
        key_times: list[float] = []
        next_time = start
        before = None  # the last keyframe before ``start``: what the first one after is compared with
        for packet in self._demux():
            if not packet.is_keyframe or packet.pts is None:
                continue
            t = float(packet.pts * self._stream.time_base) - origin
            if t > end + 1e-6:
                break
            key_times.append(t)
            if t + 1e-6 < start:
                before = packet if baseline else None
                continue
            if before is not None:
                for frame in self._decode(before) + (self._drain() if at_once else []):
                    yield self._sample(frame, origin)
                before = None
            if t + 1e-6 < next_time:
                continue
            for frame in self._decode(packet) + (self._drain() if at_once else []):
                yield self._sample(frame, origin)
            next_time = next_on_grid(t, step)
        if before is not None:  # no keyframe from ``start`` to ``end``: the one before is still the baseline
            yield from (self._sample(frame, origin) for frame in self._decode(before))
        for frame in self._decode(None):
            yield self._sample(frame, origin)
        gaps = np.diff(key_times)
        self.keyframe_interval = float(np.median(gaps)) if len(gaps) else math.inf

    def samples(self, step: float, start: float = 0.0, end: float = math.inf,
                keyframe: float | None = None) -> Iterator[Sample]:
        """One decoded frame per ``step`` seconds from ``start`` to ``end`` (clip time). With
        ``keyframe``, the time of the keyframe decoding starts from (the last at or before
        ``start``), that frame comes first, as soon as it is decoded: it is decoded anyway, and the
        screening checks it."""
        self._seek(start)
        self._stream.codec_context.skip_frame = "NONREF"
        origin = self._origin()
        next_time = start
        for packet in itertools.chain(self._demux(), [None]):
            # Past ``end`` in decoding order, every frame shown by ``end`` has been sent to the decoder
            # (none is decoded after it is shown): drain it (None) rather than feed the frames a
            # threaded decoder would take on meanwhile.
            last = packet is None or (packet.dts is not None
                                      and float(packet.dts * self._stream.time_base) - origin > end + 1e-6)
            for frame in self._drain() if last else self._decode(packet):
                t = self._time(frame, origin)
                if t is not None and t > end + 1e-6:
                    return
                if t is None or t + 1e-6 < next_time:
                    if t is not None and keyframe is not None and abs(t - keyframe) < 1e-3:
                        yield self._sample(frame, origin)
                    continue
                yield self._sample(frame, origin)
                next_time = next_on_grid(t, step)
            if last:
                return

    def packets(self, start: float = 0.0, end: float = math.inf) -> list[Packet]:
        """Every packet from the keyframe at or before ``start`` to ``end``, in presentation order,
        decoding none (demuxing costs about a hundredth of decoding)."""
        self._seek(start)
        origin = self._origin()
        packets = []
        for packet in self._demux():
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * self._stream.time_base) - origin
            if t > end + 1e-6 and packet.is_keyframe:
                break
            packets.append(Packet(t, packet.size, bool(packet.is_keyframe)))
        return sorted(packets, key=lambda p: p.time)

    # -- helpers ---------------------------------------------------------------------------------

    def _origin(self) -> float:
        """Presentation time of the first frame, which the clip's HH:MM:SS count from."""
        start = self._stream.start_time
        return float(start * self._stream.time_base) if start is not None else 0.0

    def _seek(self, start: float) -> None:
        """To the keyframe at or before ``start`` seconds (clip time)."""
        if start <= 0:
            return self._rewind()
        try:
            # A millisecond late, so that a start on a keyframe's time lands on that keyframe.
            target = int((start + self._origin() + 0.001) / self._stream.time_base)
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._stream.codec_context.flush_buffers()
        except av.FFmpegError:  # no usable index: read from the start instead
            self._rewind()

    def _rewind(self) -> None:
        """Back to the first packet; a damaged index can make seeking fail, so reopen instead."""
        if self._untouched:
            return
        self._container.close()
        self._container = self._open()
        self._untouched = True
        stream = self._container.streams.video[0]
        self._set_up_decoder(stream)
        self._stream = stream

    def _demux(self):
        self._untouched = False
        try:
            yield from self._container.demux(self._stream)
        except av.FFmpegError:
            return  # a truncated or damaged tail: analyse what came before it

    def _decode(self, packet):
        try:
            frames = self._stream.codec_context.decode(packet)
        except av.FFmpegError:
            return []
        self.frames_decoded += len(frames)
        return frames

    def _drain(self) -> list:
        """The frames the decoder still holds, leaving it ready for the next packet."""
        frames = self._decode(None)
        self._stream.codec_context.flush_buffers()
        return frames

    def _time(self, frame, origin: float) -> float | None:
        if frame.pts is None:
            return None
        t = float(frame.pts * self._stream.time_base) - origin
        if t > self._settings.max_duration:
            raise too_large(f"The video runs past {self._settings.max_duration / 3600:g} hours, the most accepted.")
        return max(0.0, t)

    def _sample(self, frame, origin: float) -> Sample:
        if frame.width * frame.height > self._settings.max_pixels:  # a stream may change size mid-way
            raise too_large(f"A frame of the video is {frame.width}x{frame.height}; at most "
                            f"{self._settings.max_pixels:,} pixels per frame are accepted.")
        w, h = analysis_size(frame.width, frame.height)
        gray = self._gray.reformat(frame, width=w, height=h, format="gray", interpolation="AREA").to_ndarray()
        return Sample(self._time(frame, origin) or 0.0, gray, frame, frame.rotation % 360, self._pictures,
                      colourfulness(frame))


def open_frames(parts: Sequence[Part], times: Sequence[float], settings: Settings,
                picture_width: int) -> tuple[list[Sample], VideoInfo]:
    """A burst of stills as samples, in the order posted, each at its given time.

    Frames are turned upright by their EXIF orientation (phones store them sideways) and refused
    if they are not JPEG, PNG or WebP, or are larger than ``settings.max_pixels`` before decoding.
    Each is kept only as large as a tile (``picture_width``): a burst of big stills would otherwise
    hold hundreds of megabytes.
    """
    samples: list[Sample] = []
    size = None
    for index, (part, t) in enumerate(zip(parts, times)):
        image = _open_image(part, index, settings)
        if size is None:
            size = image.size
        w, h = analysis_size(*size)
        gray = np.asarray(image.convert("L").resize((w, h), Image.Resampling.BOX))
        sample = Sample(float(t), gray, image, colour=colourfulness(image))
        sample.shrink(picture_width)
        samples.append(sample)
    duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    fps = (len(times) - 1) / duration if duration > 0 else None
    info = VideoInfo(duration=duration, fps=fps, width=size[0], height=size[1], codec="stills",
                     frames_analyzed=len(samples))
    return samples, info


def _open_image(part: Part, index: int, settings: Settings) -> Image.Image:
    what = f"Frame {index + 1} ({part.name})"
    try:
        image = Image.open(io.BytesIO(part.data))
    except Image.DecompressionBombError:
        raise too_large(f"{what} is larger than {settings.max_pixels:,} pixels.") from None
    except (OSError, ValueError, SyntaxError):
        raise unsupported("not_an_image", f"{what} is not an image that can be decoded (JPEG, PNG or WebP).") from None
    if image.format not in IMAGE_FORMATS:
        raise unsupported("unsupported_image", f"{what} is {image.format}; send JPEG, PNG or WebP frames.")
    if image.width * image.height > settings.max_pixels:
        raise too_large(f"{what} is {image.width}x{image.height}; at most {settings.max_pixels:,} pixels are accepted.")
    try:
        image = ImageOps.exif_transpose(image)
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise unsupported("not_an_image", f"{what} is damaged or truncated.") from None
    return image.convert("RGB")
