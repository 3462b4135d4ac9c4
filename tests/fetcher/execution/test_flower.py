"""Flower, started for real: the running fetch task and its progress, behind basic auth."""

from __future__ import annotations

import json
import sys

import pytest
from celery.result import AsyncResult

from fetcher.domain.requests import FetchRequest
from fetcher.models import FetchRun, RunStatus
from fetcher.services.submit import fetch_submit
from ibsim.server import Faults
from tests.support import (
    DEPLOYED_SHAPE,
    Process,
    answers,
    deployed_env,
    free_port,
    http_get,
    wait_finished,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE]

AUTH = "ops:flower-test-password"


@pytest.fixture
def flower(tmp_path):
    """`celery -A ibdata_project flower` as documented: address, port and basic auth come
    from the settings (flowerconfig.py), here from the environment."""
    port = free_port()
    env = deployed_env(tmp_path, FLOWER_PORT=str(port), FLOWER_BASIC_AUTH=AUTH)
    process = Process(env, tmp_path / "flower.log", "flower")
    process.popen(
        [sys.executable, "-m", "celery", "-A", "ibdata_project", "flower"], output_to_log=True
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(base), 60, f"Flower on {base}\n{process.text()[-2000:]}")
    yield base
    process.stop()


def api(url: str, auth: str = AUTH) -> tuple[int, dict | str]:
    status, body = http_get(url, auth)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def test_flower_shows_the_fetch_task_and_its_progress_and_refuses_strangers(
    sim_factory, workers, flower
):
    sim = sim_factory(faults=Faults(stall_requests=1))  # one request waits until cut off
    workers(sim)
    request = FetchRequest.parse(
        instruments="AAPL",
        timeframe="1-MINUTE",
        start="2024-01-02",
        end="2024-01-12",  # 9 sessions: 9 requests
    )
    run = FetchRun.objects.get(pk=fetch_submit(request=request, requested_by="cli").run_id)
    task_id = run.task_id

    # the task page's data (/api/task/info, from task events): PROGRESS with the run's counts,
    # all requests but the stalled one done
    def progress():
        status, info = api(f"{flower}/api/task/info/{task_id}")
        if status == 200 and info["state"] == "PROGRESS" and info["result"]["chunks_done"] == 8:
            return info

    info = wait_until(progress, 60, "Flower showing the run's progress")
    assert info["name"] == "fetcher.fetch_run" and info["worker"].startswith("ibkr0@")
    assert info["result"] == {
        "run_id": run.pk,
        "chunks_done": 8,
        "chunks_planned": 9,
        "bars": 8 * 390,
        "instrument": "AAPL",
        "requests_per_gateway": None,  # one gateway: nothing shared
    }
    # /api/task/result reads the result backend: the same state (Flower adds a task's result
    # there only once it is ready); the backend holds the same counts
    status, result = api(f"{flower}/api/task/result/{task_id}")
    assert status == 200 and result["state"] == "PROGRESS"
    assert AsyncResult(task_id).info == info["result"]
    status, page = http_get(f"{flower}/task/{task_id}", AUTH)
    assert status == 200 and "PROGRESS" in page and "chunks_planned" in page
    status, listed = api(f"{flower}/api/tasks?state=PROGRESS")
    assert status == 200 and task_id in listed

    for path in (f"/api/task/info/{task_id}", f"/api/task/result/{task_id}", "/", "/tasks"):
        assert http_get(f"{flower}{path}")[0] == 401, path
        assert http_get(f"{flower}{path}", "ops:wrong")[0] == 401, path

    sim.call(sim.drop_all)  # the stalled request is asked again on the new connection
    done = wait_finished(run.pk, 60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    status, result = wait_until(
        lambda: (r := api(f"{flower}/api/task/result/{task_id}"))[1]["state"] == "SUCCESS" and r,
        30,
        "SUCCESS in the result backend",
    )
    assert result["result"] == RunStatus.SUCCEEDED
    info = wait_until(
        lambda: (i := api(f"{flower}/api/task/info/{task_id}")[1])["state"] == "SUCCESS" and i,
        30,
        "SUCCESS on Flower's task page",
    )
