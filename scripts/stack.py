"""`make up` / `make down`: the Procfile's processes (honcho) against local PostgreSQL and Redis.

`up` first says, in one line, what the web server or Flower would refuse to start without (the
secrets `manage.py init_secrets` makes: `make up` runs it), then migrates, collects static files,
starts honcho in a session of its own (its pid and the log offset in LOG_DIR/stack.pid, every
process's output in LOG_DIR/stack.log), waits until the web and Flower answer and both workers
are ready, and says how to create the first admin user. `down` stops honcho (which stops every
process), then kills whatever is left; with nothing up it says so and exits 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from ibdata_project import deploy
except ImproperlyConfigured as exc:  # a setting to fix (WEB_PORT=abc): one line, no traceback
    sys.exit(f"❌ {exc}")
from ibdata_project.environment import LOG_DIR, env  # noqa: E402
from ibdata_project.installation import FLOWER_AUTH_FILE, secret_key_check  # noqa: E402

# Without DATABASE_URL / REDIS_URL (environment or .env), the local services scripts/services.sh
# starts: `make up` is the deployed shape, never the embedded SQLite / in-process default.
LOCAL_SERVICES = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ibdata",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
DEFAULTED: set[str] = set()  # LOCAL_SERVICES names that neither the environment nor .env set
UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 30.0
READY_WORKERS = 2  # the ibkr worker and the default/backtests worker
# Once the ibkr worker is ready, its heartbeat tells its gateway's state within this long.
GATEWAY_STATE_WAIT_S = 5.0
STARTED_RE = re.compile(r"\| (\w+) started \(pid=(\d+)\)")
PID_FILE, LOG = LOG_DIR / "stack.pid", LOG_DIR / "stack.log"


def environment() -> None:
    """What honcho's processes inherit: the local services where neither the environment nor .env
    names one, and what the Procfile reads (ibdata_project/deploy.py's web knobs). Nothing else
    of .env: each process reads it itself, and never exports it."""
    for name, value in LOCAL_SERVICES.items():
        if name not in env:
            os.environ[name] = value
            DEFAULTED.add(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")
    os.environ["WEB_PORT"] = str(deploy.WEB_PORT)
    os.environ["WEB_CONCURRENCY"] = str(deploy.WEB_CONCURRENCY)  # gunicorn reads it
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def alive(pid: int, *, group: bool = False) -> bool:
    """Whether the process (or any process of the group) still exists."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # Flower's 401 is an answer
    except OSError:
        return False
    return True


def fail(message: str) -> None:
    print(f"❌ {message}", file=sys.stderr)
    sys.exit(1)


def manage(*args: str) -> None:
    """A manage.py command, its failure as one line."""
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        fail(f"manage.py {' '.join(args)} failed: {lines[-1]}{database_hint(lines[-1])}")


def database_hint(error: str) -> str:
    """How to create the database DATABASE_URL names, when PostgreSQL says it does not exist."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if f'database "{db["NAME"]}" does not exist' not in error:
        return ""
    return (
        f". Create it: createdb -h {db.get('HOST') or '127.0.0.1'} -p {db.get('PORT') or 5432} "
        f"-U {db.get('USER') or 'postgres'} {db['NAME']}"
    )


def stack_mark() -> tuple[int, int] | None:
    """(honcho's pid, where its session starts in stack.log) from LOG_DIR/stack.pid; None when
    there is no mark (never up, or already stopped) or an unreadable one."""
    try:
        pid, offset = (int(value) for value in PID_FILE.read_text().split())
    except (FileNotFoundError, ValueError):
        return None
    return pid, offset


def signal_send(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Send `sig` to the process (or its group), which may have ended meanwhile."""
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, sig)


def up() -> None:
    environment()
    mark = stack_mark()
    if mark and alive(mark[0]):
        fail(f"already up (honcho pid {mark[0]}): `make down` first")
    try:  # what the web server and Flower would refuse to start without, said before starting
        flower_user = deploy.flower_basic_auth()[0].partition(":")[0]
        secret_key_check()
    except ImproperlyConfigured as exc:
        fail(str(exc))

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "--verbosity", "0")
    offset = LOG.stat().st_size if LOG.exists() else 0
    with open(LOG, "ab") as output:
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "--env", "/dev/null"],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    PID_FILE.write_text(f"{honcho.pid} {offset}\n")
    web = f"http://127.0.0.1:{deploy.WEB_PORT}/admin/"
    flower = f"http://127.0.0.1:{deploy.FLOWER_PORT}/"
    deadline = time.monotonic() + UP_TIMEOUT_S
    while True:
        session = LOG.read_bytes()[offset:].decode(errors="replace")
        ready = session.count(" ready.")
        if ready >= READY_WORKERS and answers(web) and answers(flower):
            break
        if honcho.poll() is not None or time.monotonic() > deadline:
            down(quiet=True)
            tail = "\n".join(session.strip().splitlines()[-15:])
            fail(f"the stack did not come up ({ready} of {READY_WORKERS} workers ready):\n{tail}")
        time.sleep(0.5)
    gateways = gateway_lines()
    password = "FLOWER_BASIC_AUTH" if deploy.FLOWER_BASIC_AUTH else f"in {FLOWER_AUTH_FILE}"
    database = f"DATABASE_URL={os.environ['DATABASE_URL']} " if "DATABASE_URL" in DEFAULTED else ""
    print(
        f"✅ ibdata is up (honcho pid {honcho.pid}); logs in {LOG_DIR} (stack.log, ibdata.log)\n"
        f"   admin   {web}\n"
        f"   Flower  {flower}  (user {flower_user}, password {password})\n"
        f"   workers ibkr, default + backtests; beat\n"
        f"{gateways}\n"
        f"First time? Create the admin user:\n"
        f"   {database}.venv/bin/python manage.py createsuperuser\n"
        f"Stop everything: make down"
    )


def gateway_lines() -> str:
    """What the ibkr worker says of its gateway once it is ready (its heartbeat, within a few
    seconds): connected (to the simulator or a real gateway), or unreachable and why."""
    import django

    django.setup()
    from django.utils import timezone

    from fetcher.cli.gateways import NO_WORKER, gateway_state_line
    from fetcher.selectors import gateway_states

    ready = timezone.now()
    deadline = time.monotonic() + GATEWAY_STATE_WAIT_S
    while True:
        states = [s for s in gateway_states() if s.seen_at and s.seen_at >= ready]
        if states or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    now = timezone.now()
    return "\n".join(f"   {gateway_state_line(s, now)}" for s in states) or f"   {NO_WORKER}"


def down(quiet: bool = False) -> None:
    """Stop what `up` started; with nothing to stop, say so (unless quiet) and return."""
    mark = stack_mark()
    if mark is None:
        if not quiet:
            print("ibdata is not up: nothing to stop.")
        return
    pid, offset = mark
    if alive(pid):
        # honcho sends SIGTERM to every process, SIGKILL after 5 s
        signal_send(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            signal_send(pid, signal.SIGKILL)
    # honcho starts each process in a session of its own: kill any group it left behind
    session = LOG.read_bytes()[offset:].decode(errors="replace") if LOG.exists() else ""
    for name, pgid in STARTED_RE.findall(session):
        if alive(int(pgid), group=True):
            print(f"   {name} (process group {pgid}) was still running: killed")
            signal_send(int(pgid), signal.SIGKILL, group=True)
    PID_FILE.unlink(missing_ok=True)
    if not quiet:
        print("✅ ibdata stopped: web, workers, beat and Flower.")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("up", "down"):
        fail("usage: scripts/stack.py up|down")
    if sys.argv[1] == "up":
        up()
    else:
        down()
