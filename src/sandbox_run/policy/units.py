"""Durations and sizes with explicit units: "30s", "250ms", "512MiB"."""

from __future__ import annotations

import math
import re

from ..errors import PolicyError

_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
}
_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$")
_BARE = re.compile(r"^\s*[0-9]+(?:\.[0-9]+)?\s*$")


def parse_duration(value: object, what: str) -> float:
    """Seconds, from a string with a unit (``"30s"``, ``"1.5m"``, ``"200ms"``)."""
    if isinstance(value, bool):
        raise PolicyError(f"{what}: expected a duration such as '30s', got {value!r}")
    if isinstance(value, (int, float)):
        raise PolicyError(f"{what}: give a unit, e.g. '{value}s' (ms, s, m, h)")
    if not isinstance(value, str):
        raise PolicyError(f"{what}: expected a duration such as '30s', got {value!r}")
    if _BARE.match(value):
        raise PolicyError(f"{what}: give a unit, e.g. '{value.strip()}s' (ms, s, m, h)")
    m = _NUMBER.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _DURATION_UNITS:
        raise PolicyError(f"{what}: cannot read duration {value!r} (use ms, s, m or h)")
    seconds = float(m.group(1)) * _DURATION_UNITS[unit]
    if not math.isfinite(seconds) or seconds <= 0:
        raise PolicyError(f"{what}: must be positive, got {value!r}")
    return seconds


def parse_size(value: object, what: str) -> int:
    """Bytes, from a string with a unit (``"512MiB"``, ``"2G"``, ``"100kB"``)."""
    if isinstance(value, bool):
        raise PolicyError(f"{what}: expected a size such as '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        raise PolicyError(f"{what}: give a unit, e.g. '{value}MiB' (B, KiB, MiB, GiB, kB, MB, GB)")
    if not isinstance(value, str):
        raise PolicyError(f"{what}: expected a size such as '512MiB', got {value!r}")
    if _BARE.match(value):
        raise PolicyError(
            f"{what}: give a unit, e.g. '{value.strip()}MiB' (B, KiB, MiB, GiB, kB, MB, GB)"
        )
    m = _NUMBER.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise PolicyError(f"{what}: cannot read size {value!r} (use B, KiB, MiB, GiB, kB, MB, GB)")
    size = float(m.group(1)) * _SIZE_UNITS[unit]
    if size <= 0 or size >= 2**63:
        raise PolicyError(f"{what}: out of range: {value!r}")
    return int(size)


def format_size(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def format_duration(s: float) -> str:
    if s < 1:
        return f"{s * 1000:g}ms"
    return f"{s:g}s"
