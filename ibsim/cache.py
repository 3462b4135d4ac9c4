"""A bounded least-recently-used cache of daily aggregate blocks, shared by every instrument."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ibsim.aggregate import Sums


class BlockCache:
    """Least-recently-used daily aggregate blocks, shared by all instruments (bounded memory)."""

    def __init__(self, max_blocks: int):
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[tuple, tuple[Sums, Sums]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[Sums, Sums] | None:
        with self._lock:
            value = self._blocks.get(key)
            if value is not None:
                self._blocks.move_to_end(key)
            return value

    def put(self, key: tuple, value: tuple[Sums, Sums]) -> tuple[Sums, Sums]:
        with self._lock:
            self._blocks[key] = value
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return value


# About 27 kB a block: 4096 blocks hold the whole daily history of ~40 instrument/what pairs.
DAILY_CACHE = BlockCache(max_blocks=4096)
