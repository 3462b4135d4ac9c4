"""The bounded cache of daily aggregate blocks (ibsim.cache)."""

from __future__ import annotations

from ibsim.aggregate import day_sums_empty
from ibsim.cache import DAILY_CACHE, BlockCache


def block():
    return day_sums_empty(), day_sums_empty()


def test_the_least_recently_used_block_goes_first():
    cache = BlockCache(max_blocks=2)
    a, b, c = block(), block(), block()
    assert cache.get("a") is None
    assert cache.put("a", a) is a
    cache.put("b", b)
    assert cache.get("a") is a  # now "b" is the least recently used
    cache.put("c", c)
    assert cache.get("b") is None
    assert cache.get("a") is a and cache.get("c") is c


def test_the_shared_cache_is_bounded():
    assert DAILY_CACHE.max_blocks == 4096
