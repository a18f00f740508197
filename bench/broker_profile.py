"""Where the local broker's CPU goes: record its JVM with Java Flight Recorder, then count the
execution samples by thread kind and by the Kafka request being handled.

The JDK's own tools only: ``jcmd <pid> JFR.start`` / ``JFR.stop`` to record, ``jfr print`` to
read the samples. ``bench/paid_latency.py --broker-jfr FILE`` records the broker during its last
measured run; this script summarizes any recording:

    .venv/bin/python bench/broker_profile.py FILE
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
from pathlib import Path

# A sample's request: the KafkaApis handler on its stack (handleProduceRequest, ...).
HANDLER = re.compile(r"KafkaApis\.(handle\w+)")
THREAD = re.compile(r'sampledThread = "([^"]+)"')
# Work a request handler does outside KafkaApis' own frame, worth its own line.
PARTS = {
    "appending records (ReplicaManager.appendRecords)": "ReplicaManager.appendRecords",
    "completing delayed operations (DelayedOperation)": "DelayedOperation",
    "reading the log for fetches (readFromLog)": "readFromLog",
}


def start(pid: int, path: Path) -> None:
    """Start recording the JVM ``pid`` into ``path`` (JFR's "profile" settings)."""
    run(["jcmd", str(pid), "JFR.start", "name=paynotify", "settings=profile", f"filename={path}"])


def stop(pid: int) -> None:
    """Stop the recording :func:`start` began and write its file."""
    run(["jcmd", str(pid), "JFR.stop", "name=paynotify"])


def run(command: list[str]) -> str:
    """Run a JDK tool; its output."""
    if shutil.which(command[0]) is None:
        raise SystemExit(f"{command[0]} not found: it comes with the JDK (Java 17)")
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def summarize(path: Path) -> tuple[int, dict[str, float], dict[str, float]]:
    """Return the number of execution samples, and the share of them by thread kind (digits
    folded) and by request handler or :data:`PARTS` (a sample may count under several)."""
    events = ["--events", "jdk.ExecutionSample", "--stack-depth", "96"]
    text = run(["jfr", "print", *events, str(path)])
    samples = text.split("jdk.ExecutionSample")[1:]
    threads: collections.Counter[str] = collections.Counter()
    work: collections.Counter[str] = collections.Counter()
    for sample in samples:
        thread = THREAD.search(sample)
        threads[re.sub(r"\d+", "#", thread.group(1)) if thread else "?"] += 1
        for handler in set(HANDLER.findall(sample)):
            work[handler] += 1
        for name, frame in PARTS.items():
            work[name] += frame in sample
    total = max(1, len(samples))
    return (
        len(samples),
        {k: v / total for k, v in threads.most_common()},
        {k: v / total for k, v in work.most_common() if v},
    )


def report(path: Path) -> None:
    """Print :func:`summarize`'s shares, largest first."""
    count, threads, work = summarize(path)
    print(f"broker profile {path}: {count} execution samples")
    for name, share in list(threads.items())[:8]:
        print(f"  {share:6.1%}  thread {name}")
    for name, share in list(work.items())[:14]:
        print(f"  {share:6.1%}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording", type=Path)
    report(parser.parse_args().recording)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
