"""Load curves of the simulated GPUs, chosen so that counters can be computed in closed form.

A load is a constant plus a few sine waves, so its integral is exact and cheap: an energy counter
computed as ``idle_power * t + span * integral(load)`` rises monotonically at exactly the rate the
power gauge shows, without keeping state between scrapes. Everything is a pure function of
(seed-derived parameters, t), which makes rendered payloads deterministic and testable.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

TAU = 2.0 * math.pi


class Pattern(enum.StrEnum):
    """What a GPU is doing: the three behaviours a fleet dashboard must tell apart."""

    BUSY = "busy"  # training: 70-100 % util, high power and memory
    IDLE = "idle"  # allocated and paid for, doing nothing: 0-5 % util
    ALTERNATING = "alternating"  # batch jobs: a few minutes busy, a few minutes idle


@dataclass(frozen=True, slots=True)
class Wave:
    """``load(t) = base + sum(a * sin(w * t + p))`` with t in seconds since the host booted."""

    base: float
    terms: tuple[tuple[float, float, float], ...]

    def load(self, t: float) -> float:
        return self.base + sum(a * math.sin(w * t + p) for a, w, p in self.terms)

    def integral(self, t: float) -> float:
        """Integral of ``load`` from 0 to ``t`` (load-seconds)."""
        total = self.base * t
        for a, w, p in self.terms:
            total += a / w * (math.cos(p) - math.cos(w * t + p))
        return total


# A square wave from its first three Fourier terms; its peak is 1.188 x (4/pi), scaled to stay in [0, 1].
_SQUARE_SCALE = 0.5 / 1.19 * 4.0 / math.pi
ALTERNATING_PERIOD_S = 240.0


def make_wave(pattern: Pattern, phase: float) -> Wave:
    """The load curve of one GPU; ``phase`` (radians) staggers GPUs and hosts."""
    if pattern is Pattern.BUSY:
        return Wave(0.86, ((0.08, TAU / 300.0, phase), (0.05, TAU / 47.0, 2.0 * phase + 1.0)))
    if pattern is Pattern.IDLE:
        return Wave(0.02, ((0.015, TAU / 200.0, phase),))
    w = TAU / ALTERNATING_PERIOD_S
    return Wave(
        0.5,
        (
            (_SQUARE_SCALE, w, phase),
            (_SQUARE_SCALE / 3.0, 3.0 * w, 3.0 * phase),
            (_SQUARE_SCALE / 5.0, 5.0 * w, 5.0 * phase),
        ),
    )


def noise(key: int, step: int) -> float:
    """Deterministic jitter in [-1, 1] for (series key, time step): a 64-bit integer mix."""
    x = (key * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return (x & 0xFFFFFF) / float(0xFFFFFF) * 2.0 - 1.0
