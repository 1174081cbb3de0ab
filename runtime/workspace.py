"""The operator's workspace: the folder holding ``aios.yaml`` and, in ``.aios/``, its state.

The workspace is found like git finds ``.git`` (walking up from the current folder), unless
``--workspace`` or ``AIOS_WORKSPACE`` names it. :class:`Workspace` opens its settings (every
key has a default), its event log and its adapters, and rebuilds state from the latest
snapshot plus the records after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiosrun.runtime.coordinator.doubles import Doubles
    from aiosrun.runtime.log.store import EventStore, Store
    from aiosrun.runtime.registry import Registry

WORKSPACE_FILE = "aios.yaml"
STATE_DIR = ".aios"
WORKSPACE_SNAPSHOT_EVERY = 2_000  # records folded after a snapshot before the next is saved
SNAPSHOT_MIN_STEPS = 16  # runs with fewer steps are folded from their records
SETTINGS_CACHE = "settings.checked"  # the checked aios.yaml, under .aios/


def find_workspace(start: Path, override: str | None = None) -> Path | None:
    if override:
        root = Path(override).expanduser()
        return root.resolve() if (root / WORKSPACE_FILE).is_file() else None
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_FILE).is_file():
            return folder
    return None


@dataclass(frozen=True)
class Settings:
    """``aios.yaml`` with defaults filled in."""

    data: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> dict[str, Any]:
        return dict(self.data.get("log", {}))

    @property
    def vars(self) -> dict[str, Any]:
        return dict(self.data.get("vars", {}))

    @property
    def env_allow(self) -> list[str]:
        return list(self.data.get("env", {}).get("allow", []))

    @property
    def require_approval(self) -> list[str]:
        return list(self.data.get("policy", {}).get("require_approval", []))

    @property
    def limits(self) -> dict[str, int]:
        """``policy.limits`` (``max_concurrent_runs``, ``max_steps_per_run``,
        ``max_foreach_items``); ``server.max_concurrent_runs`` counts too."""
        limits = dict(self.data.get("policy", {}).get("limits", {}))
        server = self.data.get("server")
        if isinstance(server, dict) and "max_concurrent_runs" in server:
            limits.setdefault("max_concurrent_runs", server["max_concurrent_runs"])
        return limits

    def adapter(self, name: str) -> dict[str, Any]:
        return dict(self.data.get("adapters", {}).get(name, {}))


def load_settings(root: Path) -> Settings:
    """Load and check ``aios.yaml``; raises :class:`PlaybookError` when it is invalid.

    A file already checked is read from ``.aios/settings.checked`` (its SHA-256 and this
    version's number, then its data as JSON): the YAML parser, the schema and the checks
    cost a read-only command several times what it reads. Any change to the file, or
    another aiosrun version, checks it again."""
    try:
        raw = (root / WORKSPACE_FILE).read_bytes()
    except OSError:
        raw = None
    cache = root / STATE_DIR / SETTINGS_CACHE
    stamp = _settings_stamp(raw) if raw is not None else None
    if stamp is not None:
        with contextlib.suppress(OSError, ValueError):
            head, _, body = cache.read_text("utf-8").partition("\n")
            if head == stamp:
                return Settings(json.loads(body))
    from aiosrun.dsl.check import check_workspace
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.loader import load_bytes, load_file

    path = root / WORKSPACE_FILE
    doc = load_bytes(raw, str(path)) if raw is not None else load_file(path)
    from aiosrun.dsl.schema import check_schema

    problems = check_schema(doc, "workspace") + check_workspace(doc)
    if problems:
        raise PlaybookError(sorted(problems))
    store = doc.data.get("store") if isinstance(doc.data, dict) else None
    in_database = isinstance(store, dict) and bool(store.get("url"))  # no .aios/ made for it
    if stamp is not None and ((root / STATE_DIR).is_dir() or in_database):
        _keep_checked(cache, stamp, doc.data)
    return Settings(doc.data)


def _settings_stamp(raw: bytes) -> str:
    # the package is loaded (this module is in it); importing it here would be a cycle
    version = getattr(sys.modules.get("aiosrun.runtime"), "__version__", "unknown")
    return f"aiosrun {version} sha256={hashlib.sha256(raw).hexdigest()}"


def _keep_checked(cache: Path, stamp: str, data: dict[str, Any]) -> None:
    """Note a checked ``aios.yaml`` (written whole or not at all; a read-only workspace
    just checks it every time). Data JSON cannot carry as it is (a YAML date) is not kept."""
    try:
        body = json.dumps(data, ensure_ascii=False)
        if json.loads(body) != data:
            return
    except (TypeError, ValueError):
        return
    temporary = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(exist_ok=True)
        temporary.write_text(f"{stamp}\n{body}", "utf-8")
        temporary.replace(cache)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


class Workspace:
    """An opened workspace: settings, event log, adapters, state."""

    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        from aiosrun.runtime.secrets import Masker, load_secrets

        self.root = root
        self.state_dir = root / STATE_DIR
        self.settings = settings or load_settings(root)
        self.secrets = load_secrets(root, self.settings.data)
        self.masker = Masker(self.secrets)
        self.store: Store = open_store(self.state_dir, self.settings, self.secrets)
        self.log: EventStore = self.store.log
        self._registry: Registry | None = None
        self._playbooks: dict[str, Any] = {}
        self._state: Any = None  # the folded workspace projection, kept up with the log
        self.record_models = os.environ.get("AIOS_RECORD") == "1"  # `run --record`
        self.doubles: Doubles | None = None  # a playbook test's stand-ins
        self._memory: Any = None
        self._memory_synced = 0.0
        self._snapshot_seq = 0  # the seq the saved workspace snapshot covers
        if (self.state_dir / "forget.pending").exists() and not self.log.read_only:
            from aiosrun.runtime.erasure import resume

            resume(self)  # an erasure a crash interrupted is finished before anything else

    @property
    def registry(self) -> Registry:
        """The adapters, discovered on first use: a command that only reads never asks."""
        if self._registry is None:
            from aiosrun.runtime.registry import Registry

            self._registry = Registry.discover(self.root)
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self._registry = registry

    async def durable(self) -> None:
        """Make this process's appends durable, sharing one fsync in a worker thread with
        every task that waits meanwhile (runtime/log/group_commit.py)."""
        await self.store.durable()

    def memory(self) -> Any:
        """The memory store, opened on first use (tantivy, usearch and numpy are imported
        only by the commands that need them) and caught up with episodes and knowledge then
        and, in a long-running process such as ``serve``, at most every 10 seconds."""
        import time

        from aiosrun.runtime.memory.store import catch_up, open_store

        if self._memory is None:
            self._memory = open_store(self)
            self._memory_synced = time.monotonic()
        elif time.monotonic() - self._memory_synced > 10:
            catch_up(self._memory, self)
            self._memory_synced = time.monotonic()
        return self._memory

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def snapshots(self) -> Path:
        return self.state_dir / "snapshots"

    def workspace_state(self, *, copy: bool = True) -> Any:
        """The workspace's projection, folded once from the snapshot and then kept up with
        the log (a long-running process asks for it on every request). Callers get a copy
        whose maps they may iterate while the log grows; ``copy=False`` gives the live
        projection, for a lookup that holds nothing across an await (copying every map
        on each request grew with the workspace's history)."""
        import copy as copying

        from aiosrun.runtime.log.projections import fold_workspace

        if self._state is None:
            snapshot = self.store.load_workspace_snapshot()
            self.store.check_covered(snapshot)
            self._state = snapshot
            self._snapshot_seq = snapshot.last_seq if snapshot else 0
        start = self._state.last_seq + 1 if self._state else 1
        # skim: a large version's IR stays text until a run needs it (runtime/log/skim.py)
        self._state = fold_workspace(self.log.read(start, skim=True), self._state)
        if not copy:
            return self._state
        view = copying.copy(self._state)
        for name, value in vars(view).items():
            if isinstance(value, dict):
                setattr(view, name, dict(value))
        return view

    @property
    def projection_loaded(self) -> bool:
        """Whether this process holds the workspace projection (a long-running one does):
        then a read answers from it, else from the parts of the snapshot it needs."""
        return self._state is not None

    def forgot(self) -> None:
        """Texts were erased from the log: the projection this process keeps is folded
        again from it, and its playbooks are decoded again."""
        from aiosrun.dsl.ir_codec import forget_decoded

        self._state = None
        self._playbooks.clear()
        forget_decoded(str(self.root))

    def _keeps_forgotten(self, state: Any) -> bool:
        """Whether a state held in memory still has a text this process erased (a run that
        forgot an item holds the outputs that carried it): such a snapshot is not saved."""
        from dataclasses import asdict

        scrubber = self.masker.forgotten
        return bool(scrubber) and scrubber.holds(asdict(state))

    def save_workspace_snapshot(self, *, every: int = WORKSPACE_SNAPSHOT_EVERY) -> None:
        """Save the workspace projection once ``every`` records have been folded since the
        snapshot it was read from or last saved (``every=0``: now).
        Its size grows with the workspace's history, so saving it on every command (or, in
        ``serve``, every second) cost more than the folding it spares the next opening."""
        state = self.workspace_state()
        if self._keeps_forgotten(state):
            return
        if every == 0 or (state.last_seq > self._snapshot_seq and (
                self._snapshot_seq == 0 or state.last_seq - self._snapshot_seq >= every)):
            self.store.save_workspace_snapshot(state)
            self._snapshot_seq = state.last_seq

    def playbook(self, digest: str, encoded: Any = None) -> Any:
        """The compiled playbook of a recorded version, decoded once per process, and read
        from the decoded-IR cache (runtime/ir_cache.py) when this process has not."""
        from aiosrun.dsl.ir_codec import cached_playbook

        cached = self._playbooks.get(digest)
        if cached is None:
            cached = self._playbooks[digest] = cached_playbook(
                str(self.root), digest, lambda: self._decoded(digest, encoded))
        return cached

    def _decoded(self, digest: str, encoded: Any) -> Any:
        """The version from the cache file, else decoded from its record; a large one
        (its record skimmed) is then cached. A small one decodes in about the time its
        cache file would load: it gets none."""
        from aiosrun.dsl.ir_codec import decode_playbook
        from aiosrun.runtime import ir_cache
        from aiosrun.runtime.log.skim import RawJson, plain_ir

        known = self.workspace_state(copy=False).versions.get(digest)
        seq = known.seq if known is not None else None
        if seq is not None:
            playbook = ir_cache.load(self.state_dir, digest, seq)
            if playbook is not None:
                return playbook
        raw = self._recorded_ir(digest) if encoded is None else encoded
        playbook = decode_playbook(plain_ir(raw))
        if seq is not None and isinstance(raw, RawJson) and not self.log.read_only:
            ir_cache.save(self.state_dir, digest, seq, playbook)
        return playbook

    def version_ir(self, digest: str) -> Any:
        """A recorded version's encoded IR, parsed (and kept so: later asks are free)."""
        from aiosrun.runtime.log.skim import RawJson

        encoded = self._recorded_ir(digest)
        if isinstance(encoded, RawJson):
            encoded = self.workspace_state(copy=False).versions[digest].ir = encoded.value()
        return encoded

    def _recorded_ir(self, digest: str) -> Any:
        """A version's IR as its record holds it: parsed, or a large one's text (RawJson).
        The workspace snapshot keeps it out (it made most of the snapshot), so a version
        read from one fetches it from its record, found by seq, the first time it is
        needed."""
        from aiosrun.runtime.log.eventlog import LogCorrupted

        version = self.workspace_state(copy=False).versions[digest]
        if version.ir is None:
            record = next(iter(self.log.read(version.seq, skim=True)), None)
            if record is None or record.seq != version.seq or \
                    record.data.get("digest") != digest or "ir" not in record.data:
                raise LogCorrupted(self.state_dir / "log", version.seq, f"the record of "
                                   f"playbook version {digest[:12]} is not at seq "
                                   f"{version.seq}: `aiosrun doctor --rebuild` rebuilds the "
                                   "snapshot that names it")
            version.ir = record.data["ir"]  # the fold's own Version: later asks are free
        return version.ir

    def run_state(self, run_id: str, until_seq: int | None = None, *,
                  last_seq: int | None = None, first_seq: int = 1) -> Any:
        """The run's state (as it was at ``until_seq``); ``last_seq`` and ``first_seq``, the
        run's latest and first records as the workspace projection knows them, bound the
        read."""
        from aiosrun.runtime.log.projections import fold_run

        snapshot = None
        if until_seq is None:
            snapshot = self.store.load_run_snapshot(run_id)
            self.store.check_covered(snapshot, run_id)
        start = max(snapshot.last_seq + 1 if snapshot else 1, first_seq)
        bounds = [seq for seq in (until_seq, last_seq) if seq is not None]
        end = min(bounds) if bounds else None
        return fold_run(run_id, self.log.read_run(run_id, start, end), snapshot, until_seq)

    def save_run_snapshot(self, state: Any) -> None:
        """Save where a run stands, for runs long enough that folding their records costs
        more than reading a snapshot: a run of a few steps folds in well under a
        millisecond, and writing its snapshot cost more than the run's own steps."""
        if self._keeps_forgotten(state):
            return
        if len(state.steps) >= SNAPSHOT_MIN_STEPS or self.store.has_run_snapshot(state.id):
            self.store.save_run_snapshot(state)


def open_store(state_dir: Path, settings: Settings, secrets: dict[str, str]) -> Store:
    """The store ``aios.yaml`` names: PostgreSQL under ``store.url``, else the JSONL log."""
    store = settings.data.get("store")
    if isinstance(store, dict) and store.get("url"):
        from aiosrun.runtime.log.postgres import open_postgres

        return open_postgres(store, secrets)
    from aiosrun.dsl.durations import parse_duration
    from aiosrun.runtime.log.eventlog import EventLog
    from aiosrun.runtime.log.jsonl import JsonlStore

    log = settings.log
    window = parse_duration(log.get("group_window", "5ms")) or 5
    return JsonlStore(state_dir, EventLog(
        state_dir / "log", fsync=log.get("fsync", "group"), group_window=window / 1000,
        segment_bytes=log.get("segment_bytes", 64 * 1024 * 1024)).open())
