import signal
import subprocess
import sys
from pathlib import Path

from paynotify.supervisor import supervise

CRASH_TWICE = """
import sys
from pathlib import Path
runs = Path(sys.argv[1])
runs.write_text(runs.read_text() + "x")
sys.exit(1 if len(runs.read_text()) < 3 else 0)
"""


def test_supervise_restarts_a_crashed_worker_until_it_exits_cleanly(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.write_text("")
    code = supervise([sys.executable, "-c", CRASH_TWICE, str(runs)], "test", first_pause_s=0.01)
    assert code == 0 and runs.read_text() == "xxx"


SUPERVISED_SLEEPER = """
import sys
from paynotify.supervisor import supervise
child = "import signal, sys, time; signal.signal(15, lambda *a: sys.exit(7)); " + (
    "print('up', flush=True); time.sleep(30)"
)
sys.exit(supervise([sys.executable, "-c", child], "test"))
"""


def test_supervise_passes_sigterm_on_and_returns_the_worker_code() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISED_SLEEPER], stdout=subprocess.PIPE, text=True
    ) as supervisor:
        assert supervisor.stdout is not None and supervisor.stdout.readline() == "up\n"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 7


SUPERVISED_DEFAULT_HANDLER = """
import sys
from paynotify.supervisor import supervise
child = "import time; print('up', flush=True); time.sleep(30)"
sys.exit(supervise([sys.executable, "-c", child], "test"))
"""


def test_supervise_worker_ended_by_the_forwarded_sigterm_exits_zero() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISED_DEFAULT_HANDLER], stdout=subprocess.PIPE, text=True
    ) as supervisor:
        assert supervisor.stdout is not None and supervisor.stdout.readline() == "up\n"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
