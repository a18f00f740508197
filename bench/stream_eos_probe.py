"""Kill -9 probe for the stream (the evidence in docs/reliability.md).

Starts a private broker and one ``paynotify stream`` worker with the given guarantee, publishes
N orders with every payment twice (first half, then wait until N/8 are paid, then the second half),
sends SIGKILL to the worker one second later, restarts it, and counts ``order-paid`` with a
read_committed consumer: orders paid, orders with several events, tracebacks in the logs.

    .venv/bin/python bench/stream_eos_probe.py /tmp/probe/run exactly_once 4000 [quix|faust]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paynotify.broker import LocalBroker, free_port
from tests.support.stack import Service
from tests.support.stream_load import (
    fill,
    read_committed,
    wait_paid,
    write_stream_config,
)


def main(folder: Path, guarantee: str, n: int, engine: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(folder / "kafka", port=free_port())
    print("broker", broker.start(), flush=True)
    bootstrap = broker.bootstrap_servers
    try:
        config, prefix = write_stream_config(folder, bootstrap, guarantee=guarantee, engine=engine)
        worker = Service("stream", config)
        worker.start()
        time.sleep(15)
        numbers = [f"o-{i}" for i in range(n)]
        fill(bootstrap, prefix, numbers[: n // 2])
        deadline = time.monotonic() + 60
        while len(read_committed(bootstrap, prefix + "order-paid", settle=0.5)) <= n // 8:
            if time.monotonic() > deadline:
                break
        fill(bootstrap, prefix, numbers[n // 2 :])
        time.sleep(1.0)
        worker.kill()
        paid_at_kill = len(read_committed(bootstrap, prefix + "order-paid", settle=0.5))
        print("killed at paid", paid_at_kill, flush=True)
        worker.start()
        counts = wait_paid(bootstrap, prefix, n, timeout=120)
        missing = sorted(set(numbers) - set(counts))
        (folder / "missing.json").write_text(json.dumps(missing))
        doubled = sum(v > 1 for v in counts.values())
        print("orders paid", len(counts), "orders with several", doubled, "missing", len(missing))
        worker.stop()
        print("tracebacks", worker.output().count("Traceback"))
    finally:
        broker.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), (sys.argv[4:] or ["quix"])[0])
