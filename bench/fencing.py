"""What fencing costs an append on PostgreSQL (no asserts): appends/s of step records of a
run this process holds a lease on (the statement checks the lease row's token, ``FOR
SHARE``) beside the same appends of a run without a lease (the plain statement), in
alternating rounds on one throwaway server (fsync on), one process.

    python bench/fencing.py [--appends 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.postgres import PostgresStore

from tests.support.postgres import PostgresServer


def appends_per_second(store: PostgresStore, run: str, count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        store.log.append(NewEvent("StepSucceeded", {"path": f"s{n}", "outputs": {"n": n}},
                                  run=run))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with PostgresServer(durable=True) as server:
        store = PostgresStore(server.database(), None, lease_seconds=60)
        try:
            lease = store.lease("fenced")
            assert lease.try_acquire()
            plain: list[float] = []
            fenced: list[float] = []
            for _ in range(args.rounds):
                plain.append(appends_per_second(store, "plain", args.appends))
                fenced.append(appends_per_second(store, "fenced", args.appends))
            lease.release()
        finally:
            store.close()
    plain.sort()
    fenced.sort()
    median = args.rounds // 2
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.appends} "
          "appends each, medians:")
    print(f"  without a lease (plain statement): {plain[median]:8.0f} appends/s")
    print(f"  with a lease (fenced statement):   {fenced[median]:8.0f} appends/s "
          f"({fenced[median] / plain[median]:.2f} of plain)")


if __name__ == "__main__":
    main()
