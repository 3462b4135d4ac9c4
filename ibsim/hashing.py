"""Counter-based randomness for the simulated market: the same inputs always give the same numbers."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# Counter-based randomness: splitmix64 of (seed, conId, stream) and a time index. The same
# inputs give the same numbers whatever else is computed, so no bar depends on the request.

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(n) for n in (11, 27, 30, 31, 32))
_LOGISTIC_SCALE = np.sqrt(3.0) / np.pi
_LOW32 = np.uint64(0xFFFFFFFF)


class Stream(IntEnum):
    DAY_RETURN = 1
    DAY_GAP = 2
    DAY_VOLUME = 3
    PATH = 10
    HIGH_LOW = 11
    VOLUME = 12
    VOLUME_AUX = 13
    SPREAD = 15
    VOLATILITY = 20
    SEC_PATH = 30
    SEC_TOUCH = 31
    SEC_ACTIVE = 32
    SEC_COUNT = 33


def _mix_int(x: int) -> int:
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_key(seed: int, con_id: int, stream: int) -> np.uint64:
    key = 0
    for part in (seed, con_id, stream):
        key = _mix_int(key + 0x9E3779B97F4A7C15 + (part & _MASK64))
    return np.uint64(key)


def hash64(key: np.uint64, index: np.ndarray) -> np.ndarray:
    """splitmix64 of key + index * golden, vectorised with uint64 wraparound."""
    z = np.asarray(index).astype(np.uint64)
    z *= _GOLDEN
    z += key
    z ^= z >> _S30
    z *= _MUL1
    z ^= z >> _S27
    z *= _MUL2
    z ^= z >> _S31
    return z


def halves(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniforms in (0, 1) from the high and low 32 bits of each hash."""
    scale = 1.0 / 4294967296.0
    high = ((z >> _S32).view(np.int64).astype(np.float64) + 0.5) * scale
    low = ((z & _LOW32).view(np.int64).astype(np.float64) + 0.5) * scale
    return high, low


def uniform(z: np.ndarray) -> np.ndarray:
    """A uniform in (0, 1) from the top 53 bits of each hash."""
    return ((z >> _S11).view(np.int64).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def normal(z: np.ndarray) -> np.ndarray:
    """Unit-variance logistic variates: bell-shaped with fat tails, like returns, and cheap."""
    u = uniform(z)
    return np.log(u / (1.0 - u)) * _LOGISTIC_SCALE


def round_to(x: np.ndarray, tick: float, decimals: int) -> np.ndarray:
    return np.round(np.round(x / tick) * tick, decimals)
