"""Packets -> the stretches of a clip where something may have moved, from their sizes alone.

A camera's encoder codes a still scene's inter frames in few bytes and spends more wherever
something moves, and the demuxer gives every packet's size for about a hundredth of the cost of
decoding it. So sizes can say which stretches between keyframes are still, including motion that
starts and ends between two keyframes (which comparing keyframes cannot see).

They say it only where the encoder has bits to spare. A stream of keyframes only, one of
constant-size packets (CBR padding), and one whose every frame is mostly sensor grain that changes
from frame to frame (the encoder spends its whole budget on grain, so motion barely shows) give
no usable signal: ``screen`` then returns None, and the whole span is decoded as before. The
sizes are also checked against what the keyframes show (``Screen.responds``): where the picture
changed between two keyframes, the sizes between them must have risen, else they are not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .frames import Packet

# Inter frames are averaged over windows this long (seconds), WINDOW / 2 apart: long enough to even
# out the pattern of P and B frames, short enough that a person crossing in 1.5 s fills one.
WINDOW = 1.0
# What a still window costs there: this low percentile of the windows' mean sizes within
# NEIGHBOURHOOD seconds either side (rate control lets a still scene's cost drift over minutes;
# motion may fill most of a neighbourhood and the still stretches still set the baseline).
BASELINE_PERCENTILE = 20
NEIGHBOURHOOD = 20.0
PHASE_WINDOWS = 5
# A window may hold motion when its mean is over the baseline by this share, or by NOISE_FACTOR
# times the still windows' own spread (relative) if that is more.
MARGIN = 0.5
NOISE_FACTOR = 3.0
# No usable signal when: fewer inter frames than this; the still windows spread by more than
# MAX_SPREAD of their baseline (noise: sizes say nothing); a still inter frame costs more than
# MAX_INTER_SHARE of a keyframe; or more than MAX_SUSPECT of the windows may hold motion (little
# to save: decode it all). The share tells a stream with bits to spare (variable bitrate, a
# denoised picture: a still inter frame costs a few hundredths of a percent of a keyframe, and
# motion many times that) from one that spends a fixed budget whatever happens (a target
# bitrate: rate control, not the picture, sets the sizes; grain that changes every frame; CBR
# padding): measured at 0.0002-0.006 for the first kind, 0.018-0.2 for the second.
MIN_INTER_FRAMES = 20
MAX_SPREAD = 0.5
MAX_INTER_SHARE = 0.01
MAX_SUSPECT = 0.6


@dataclass(frozen=True)
class Screen:
    """What a span's packets say: its keyframes' times and the stretches that may hold motion."""

    keyframes: list[float]
    suspect: list[tuple[float, float]]  # merged windows whose inter frames cost more than still ones

    def responds(self, start: float, end: float) -> bool:
        """Whether the sizes saw motion between ``start`` and ``end`` (two keyframes)."""
        return any(a < end and b > start for a, b in self.suspect)


def screen(packets: Sequence[Packet]) -> Screen | None:
    """The stretches of ``packets`` (one span of a clip, in presentation order) whose inter frames
    cost more than a still scene's, or None when the sizes give no usable signal."""
    keys = [p.time for p in packets if p.key]
    inter = [p for p in packets if not p.key]
    if len(inter) < MIN_INTER_FRAMES or not keys:
        return None
    times = np.array([p.time for p in inter])
    sizes = np.array([p.size for p in inter], np.float64)
    starts = np.arange(times[0], max(times[0], times[-1] - WINDOW / 2) + 1e-9, WINDOW / 2)
    lo, hi = np.searchsorted(times, starts), np.searchsorted(times, starts + WINDOW)
    keep = hi - lo >= 2
    starts, lo, hi = starts[keep], lo[keep], hi[keep]
    if len(starts) < 4:
        return None
    cumulative = np.concatenate([[0.0], np.cumsum(sizes)])
    means = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    near_lo = np.searchsorted(starts, starts - NEIGHBOURHOOD)
    near_hi = np.searchsorted(starts, starts + NEIGHBOURHOOD, side="right")
    baseline = np.array([np.percentile(means[a:b], BASELINE_PERCENTILE) for a, b in zip(near_lo, near_hi)])
    if (baseline <= 0).any():
        return None
    ratio = means / baseline
    # Encoders spend differently at each place in a group of pictures (the frames after a keyframe
    # cost less, say): each window is compared with the usual ratio of windows as far from theirs,
    # where there are PHASE_WINDOWS of them to say what is usual (else motion in one of two groups
    # would be half of what is usual).
    phase = np.round((starts - np.asarray(keys)[np.maximum(0, np.searchsorted(keys, starts, side="right") - 1)])
                     / (WINDOW / 2)).astype(int)
    usual = np.ones(phase.max() + 1)
    for k in np.unique(phase):
        if np.count_nonzero(phase == k) >= PHASE_WINDOWS:
            usual[k] = max(1.0, float(np.median(ratio[phase == k])))
    ratio = ratio / usual[phase]
    still = ratio[ratio <= np.median(ratio)]
    spread = float(np.median(np.abs(still - 1.0))) * 1.4826
    share = float(np.median(baseline)) / float(np.median([p.size for p in packets if p.key]))
    if spread > MAX_SPREAD or share > MAX_INTER_SHARE:
        return None
    flagged = ratio > 1 + max(MARGIN, NOISE_FACTOR * spread)
    if flagged.mean() > MAX_SUSPECT:
        return None
    suspect: list[tuple[float, float]] = []
    for start in starts[flagged]:
        if suspect and start <= suspect[-1][1]:
            suspect[-1] = (suspect[-1][0], float(start + WINDOW))
        else:
            suspect.append((float(start), float(start + WINDOW)))
    return Screen(keys, suspect)
