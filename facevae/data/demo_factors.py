"""The demo video's ground truth: one row of factors per frame, the same for the same seed.

The factors and their units are listed in `facevae.data.synthetic`. Expressions (smile, brow, gaze) come as events:
a ramp, a hold, a release, then a rest. Pose, light and framing drift slowly as sums of a few sinusoids with random
periods and phases. Each factor draws from its own random stream of the seed, so the same seed always gives the same
factors and the same frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facevae.data.h264 import frame_rate

FACTOR_NAMES: tuple[str, ...] = ("smile", "brow", "gaze", "roll", "yaw", "light", "scale", "dx", "dy")


@dataclass(frozen=True)
class EventStyle:
    """Timing of one expression's events in seconds: the rest before each, its ramps up and down, its hold."""

    rest: tuple[float, float]
    ramp: tuple[float, float]
    hold: tuple[float, float]


SMILE_EVENTS = EventStyle(rest=(2.0, 6.5), ramp=(0.3, 0.8), hold=(1.0, 4.0))
BROW_EVENTS = EventStyle(rest=(3.0, 9.0), ramp=(0.2, 0.5), hold=(0.5, 2.0))
GAZE_EVENTS = EventStyle(rest=(1.0, 4.0), ramp=(0.08, 0.2), hold=(0.5, 2.5))


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(t: np.ndarray, up: float, hold: float, down: float) -> np.ndarray:
    """0 before t=0, a smooth rise to 1 over `up`, 1 for `hold`, a smooth fall to 0 over `down`."""
    return smoothstep(t / up) - smoothstep((t - up - hold) / down)


def _events(
    rng: np.random.Generator,
    times: np.ndarray,
    style: EventStyle,
    amplitude: Callable[[np.random.Generator], float],
) -> np.ndarray:
    """Non-overlapping events at the given times; a longer clip of the same seed starts with the same events."""
    out = np.zeros(len(times))
    end = times[-1] if len(times) else 0.0
    start = rng.uniform(0.0, style.rest[1])
    while start <= end:
        up, hold, down = rng.uniform(*style.ramp), rng.uniform(*style.hold), rng.uniform(*style.ramp)
        peak = amplitude(rng)
        stop = start + up + hold + down
        i, j = np.searchsorted(times, [start, stop])
        out[i:j] += peak * _envelope(times[i:j] - start, up, hold, down)
        start = stop + rng.uniform(*style.rest)
    return out


def _drift(rng: np.random.Generator, times: np.ndarray, periods: tuple[float, float], waves: int = 3) -> np.ndarray:
    """A slow wander in [-1, 1]: a few sinusoids with log-uniform periods and random phases, softly saturated."""
    period = np.exp(rng.uniform(math.log(periods[0]), math.log(periods[1]), waves))
    phase = rng.uniform(0.0, 2 * math.pi, waves)
    weight = rng.uniform(0.5, 1.0, waves)
    mean = np.sin(2 * math.pi * times[:, None] / period + phase) @ weight / weight.sum()
    # An average of sinusoids seldom nears its bounds; tanh spreads it so the extremes do occur, without overshoot.
    return np.tanh(2.0 * mean) / math.tanh(2.0)


def _smile_peak(rng: np.random.Generator) -> float:
    # One event in six is a frown; smiles lean broad so that about 30% of frames have smile > 0.5.
    if rng.random() < 1 / 6:
        return -rng.uniform(0.3, 1.0)
    return rng.uniform(0.35, 1.0) ** 0.6


def _gaze_peak(rng: np.random.Generator) -> float:
    return rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.0)


def _stream(seed: int, name: str, part: int = 0) -> np.random.Generator:
    """A random stream of its own for each factor and each part of it, so that changing how many numbers one part
    draws (a longer clip has more events) leaves every other part as it was."""
    return np.random.default_rng([seed, FACTOR_NAMES.index(name), part])


def factors_at(times: np.ndarray, seed: int, smiling: bool) -> pd.DataFrame:
    """The factor table for frames shown at `times` (seconds)."""
    if smiling:
        smile = 0.8 + 0.15 * _drift(_stream(seed, "smile", 2), times, (1.5, 6.0))
    else:
        smile = _events(_stream(seed, "smile"), times, SMILE_EVENTS, _smile_peak)
        smile += 0.04 * _drift(_stream(seed, "smile", 1), times, (1.0, 4.0))
    brow = _events(_stream(seed, "brow"), times, BROW_EVENTS, lambda r: r.uniform(0.4, 1.0))
    gaze = _events(_stream(seed, "gaze"), times, GAZE_EVENTS, _gaze_peak)
    gaze += 0.08 * _drift(_stream(seed, "gaze", 1), times, (2.0, 8.0))
    table = {
        "frame": np.arange(len(times)),
        "smile": np.clip(smile, -1.0, 1.0),
        "brow": np.clip(brow, 0.0, 1.0),
        "gaze": np.clip(gaze, -1.0, 1.0),
        "roll": 12.0 * _drift(_stream(seed, "roll"), times, (5.0, 30.0)),
        "yaw": _drift(_stream(seed, "yaw"), times, (4.0, 25.0)),
        "light": 1.0 + 0.25 * _drift(_stream(seed, "light"), times, (10.0, 60.0)),
        "scale": np.exp(0.17 * _drift(_stream(seed, "scale"), times, (8.0, 45.0))),
        "dx": 110.0 * _drift(_stream(seed, "dx"), times, (6.0, 40.0)),
        "dy": 40.0 * _drift(_stream(seed, "dy"), times, (6.0, 40.0)),
    }
    return pd.DataFrame(table)


def demo_factors(n_frames: int, fps: float, seed: int = 0, smiling: bool = False) -> pd.DataFrame:
    """Factors for n_frames shown at a constant fps: columns `frame` then FACTOR_NAMES (units: module docstring).

    These are exactly the factors write_demo_video puts beside a constant-rate clip of the same fps and seed.
    """
    return factors_at(np.arange(n_frames) * float(1 / frame_rate(fps)), seed, smiling)
