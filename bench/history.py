"""CLI latency on a workspace with a long history, beside a fresh one (no asserts).

Builds a workspace of ``--records`` records (1,000,000 by default): a few real runs are made
with the engine (short runs of five steps, and runs waiting at a gate, so ``inbox`` has
something to list), and their records are then repeated under new run ids and seqs, written
directly in the log's format (checksummed lines, segments rotated at 64 MiB, ``runs.idx``
with its run lines and offsets, watermarks, seals and clean-close line); with ``--doctor``,
``aiosrun doctor`` verifies the result first. The first command folds the history and saves
the workspace snapshot, as the engine would have. Then prints, for the
fresh and the long workspace: ``status RUN``, ``runs`` (the latest 20), ``runs --all``,
``inbox`` (process wall time, median of ``--repeat``), and the time to open a
:class:`Workspace`. Run with ``uptime`` in mind:
compare rows of one run, not figures across runs.

    .venv/bin/python bench/history.py [--records 1000000] [--repeat 7] [--doctor] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

AIOSRUN = str(Path(sys.executable).with_name("aiosrun"))
SEGMENT_BYTES = 64 * 1024 * 1024
NOOP = """apiVersion: aiosrun/v1
kind: Playbook
name: noop
steps:
""" + "".join(f"  - id: s{i}\n    set: {{v: {i}}}\n" for i in range(5))
GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: first
    set: {v: 1}
  - id: review
    gate: {message: 'Go on?'}
  - id: after
    set: {v: 2}
"""


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIOSRUN, "-w", str(root), *args], capture_output=True, text=True,
                          check=False)


def fresh(root: Path) -> Path:
    """A workspace with the two playbooks applied and one run of each."""
    root.mkdir(parents=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n", "utf-8")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "noop.yaml").write_text(NOOP, "utf-8")
    (root / "playbooks" / "gated.yaml").write_text(GATED, "utf-8")
    for args in (("apply",), ("run", "noop"), ("run", "gated")):
        done = cli(root, *args)
        if done.returncode not in (0, 3):
            raise SystemExit(f"aiosrun {' '.join(args)} failed: {done.stderr}")
    return root


def sign(text: str) -> str:
    return f"{text} #{zlib.crc32(text.encode('utf-8')):08x}"


def line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    crc = zlib.crc32(body.encode("utf-8"))
    return (body[:-1] + f',"crc":"{crc:08x}"}}\n').encode("utf-8")


def grow(root: Path, records: int) -> None:
    """Repeat the fresh workspace's runs until the log holds ``records`` records."""
    log = root / ".aios" / "log"
    segments = sorted(log.glob("*.jsonl"))
    assert len(segments) == 1, "the fresh log fits one segment"
    rows = [json.loads(text) for text in segments[0].read_text("utf-8").splitlines()]
    for row in rows:
        row.pop("crc")
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("run"):
            runs.setdefault(row["run"], []).append(row)
    shapes = list(runs.values())
    shutil.rmtree(root / ".aios" / "snapshots", ignore_errors=True)
    (log / "runs.idx").unlink()
    index: list[str] = []
    seq = rows[-1]["seq"]
    seg_first, seg_size, seg_crc = 1, segments[0].stat().st_size, zlib.crc32(
        segments[0].read_bytes())
    out = open(segments[0], "ab")  # noqa: SIM115 (rotated below)
    filed = {(run, segments[0].name) for run in runs}
    index += [sign(f"{row['run']} {segments[0].name} {row['seq']}") for row in rows
              if row.get("run") and row is runs[row["run"]][0]]
    sealed: list[tuple[Path, int, int]] = []
    number = 0
    while seq < records:
        shape = shapes[number % len(shapes)]
        if shape[-1]["type"] == "GateOpened" and number % 500 != 1:
            shape = shapes[0]  # a waiting run now and then, not one in two
        number += 1
        run = f"r{number:07d}-{zlib.crc32(str(number).encode()):08x}"
        chunk = []
        for row in shape:
            if seq >= records:
                break
            seq += 1
            copy = dict(row, seq=seq, run=run)
            if copy.get("cause") is not None:
                copy["cause"] = copy["cause"] - row["seq"] + seq
            chunk.append(line(copy))
        payload = b"".join(chunk)
        segment = log / f"{seg_first:012d}.jsonl"
        if (run, segment.name) not in filed:
            index.append(sign(f"{run} {segment.name} {seq - len(chunk) + 1} {seg_size}"))
            filed.add((run, segment.name))
        out.write(payload)
        seg_size += len(payload)
        seg_crc = zlib.crc32(payload, seg_crc)
        if seq // 1000 > (seq - len(chunk)) // 1000:
            index.append(sign(f"@ {seq} {segment.name} {seg_size}"))
        if seg_size >= SEGMENT_BYTES:
            out.close()
            sealed.append((segment, seg_size, seg_crc))
            seg_first, seg_size, seg_crc = seq + 1, 0, 0
            out = open(log / f"{seg_first:012d}.jsonl", "ab")  # noqa: SIM115
    out.close()
    last = log / f"{seg_first:012d}.jsonl"
    sealed.append((last, seg_size, seg_crc))
    for path, size, crc in sealed:  # as a clean close seals: size, CRC32, the file's stat
        stat = path.stat()
        index.append(sign(f"= {path.name} {size} {crc:08x} {stat.st_mtime_ns} {stat.st_ino} "
                          f"{time.time_ns()}"))
    index.append(sign(f"! {seq}"))
    (log / "runs.idx").write_text("".join(f"{text}\n" for text in index), "utf-8")


def wall(root: Path, args: tuple[str, ...], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = cli(root, *args)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 3):
            raise SystemExit(f"aiosrun {' '.join(args)} failed: {done.stderr}")
    return statistics.median(times) * 1000


def open_time(root: Path, repeat: int) -> float:
    code = ("import sys, time; t = time.perf_counter(); "
            "from aiosrun.runtime.workspace import Workspace; from pathlib import Path; "
            "ws = Workspace(Path(sys.argv[1])); ws.close(); "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code, str(root)], check=True,
                                  capture_output=True, text=True).stdout)
             for _ in range(repeat)]
    return statistics.median(times) * 1000


def waiting_run(root: Path) -> str:
    listed = json.loads(cli(root, "runs", "--format", "json").stdout)
    return str(listed[-1]["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--doctor", action="store_true",
                        help="verify the built workspace with `aiosrun doctor` first")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the long workspace here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiosrun-history-") as tmp:
        small = fresh(Path(tmp) / "fresh")
        big = args.keep or Path(tmp) / "long"
        if not (big / ".aios").exists():
            shutil.rmtree(big, ignore_errors=True)
            start = time.perf_counter()
            fresh(big)
            grow(big, args.records)
            built = time.perf_counter() - start
            print(f"built {args.records:,} records in {built:.1f} s")
            if args.doctor:
                start = time.perf_counter()
                doctor = cli(big, "doctor")
                if doctor.returncode != 0:
                    raise SystemExit(f"aiosrun doctor refused the workspace: {doctor.stderr}")
                print(f"`aiosrun doctor` verified them in {time.perf_counter() - start:.1f} s: "
                      f"{doctor.stdout.strip().splitlines()[0]}")
            start = time.perf_counter()
            cli(big, "runs")  # the first command folds the history and saves the snapshot
            print(f"the first `aiosrun runs` (folds it all, saves the snapshot): "
                  f"{time.perf_counter() - start:.1f} s")
        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores shared: compare rows, not runs)")
        print(f"{'ms (median of ' + str(args.repeat) + ')':28} {'fresh':>9} {'long':>9}")
        rows = [("aiosrun status RUN", lambda r: wall(r, ("status", waiting_run(r)),
                                                      args.repeat)),
                ("aiosrun runs", lambda r: wall(r, ("runs",), args.repeat)),
                ("aiosrun runs --all", lambda r: wall(r, ("runs", "--all"), args.repeat)),
                ("aiosrun inbox", lambda r: wall(r, ("inbox",), args.repeat)),
                ("Workspace open (in process)", lambda r: open_time(r, args.repeat)),
                ("python -c pass (floor)", lambda r: wall_python(args.repeat))]
        for name, measure in rows:
            try:
                print(f"{name:28} {measure(small):9.0f} {measure(big):9.0f}")
            except SystemExit as exc:  # an option this version does not have
                print(f"{name:28} {'-':>9} {'-':>9}  ({str(exc).strip()[:60]})")


def wall_python(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


if __name__ == "__main__":
    main()
