"""What the tests of a run's execution share: the project pointed at a simulator."""

from __future__ import annotations

import pytest


@pytest.fixture
def point_at(settings, tmp_path, in_process_tasks):
    """Point the project at a simulator (and a catalog of the test's own); runs go in-process."""

    def point(sim):
        settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", sim.port
        settings.DATA_DIR = tmp_path / "data"
        return sim

    return point
