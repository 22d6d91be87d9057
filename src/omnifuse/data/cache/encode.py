"""Encoding a manifest into a feature cache: resumable, deduplicated, skipping bad items.

For each requested column the encoder is built (seeded, so random-init encoders are the same on
every run), its fingerprint is checked against ``cache.json``, and every value of the column is
hashed. Distinct contents that are neither cached nor known to fail are cut, in manifest order,
into groups of ``shard_size``; each group is encoded in batches of ``batch_size`` and written as
one shard. Because finished shards are a prefix of the groups, a resumed run forms exactly the
groups and batches that an uninterrupted run would have formed after that point, so its features
are bit-identical. Items whose preprocessing raises an :class:`InputError` are dropped from their
batch and recorded in their group's shard, so a rerun reports them again without retrying them
(a changed file has a new key and is tried afresh).

With an engine that runs elsewhere (a process pool, Ray), the batches go to its workers, each of
which rebuilds the encoder once and checks its fingerprint; the results come back in batch order
and this process alone writes the shards, so the cache is the same file for file and keeps its
one-writer, shard-is-the-commit guarantees.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse import encoders as encoder_registry
from omnifuse.data.cache.batches import (
    Batch,
    BatchResult,
    EncoderWorker,
    build_encoder,
    encode_batch,
    inference,
)
from omnifuse.data.cache.keys import content_key, fingerprint
from omnifuse.data.cache.report import (
    ColumnReport,
    EncodeReport,
    SkippedItem,
    manifest_skips,
    write_errors,
)
from omnifuse.data.cache.sources import SourceIndex, SourceRecord
from omnifuse.data.cache.store import (
    TOKEN_DTYPES,
    CacheMeta,
    ColumnInfo,
    ColumnStore,
    Row,
    column_dirname,
)
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.encoders.base import Encoder
from omnifuse.engines import Engine
from omnifuse.errors import ConfigError, InputError
from omnifuse.progress import track

LOCK_FILE = ".lock"


@dataclass
class _Plan:
    """The work of one column: distinct contents to encode and where each content was seen."""

    pending: list[tuple[str, Any]]
    samples_of: dict[str, list[str]]
    sources: dict[str, SourceRecord]


class _Budget:
    """Counts batches for ``stop_after_batches``; unlimited when None."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def encode_manifest(
    manifest_path: str | Path,
    encoders: Mapping[str, str | Encoder],
    out: str | Path,
    *,
    encoder_config: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 32,
    shard_size: int = 256,
    store_tokens: bool = True,
    tokens_dtype: str = "fp16",
    device: str = "cpu",
    dtype: str = "fp32",
    seed: int = 0,
    stop_after_batches: int | None = None,
    engine: Engine | None = None,
) -> EncodeReport:
    """Encode columns of a manifest into the cache at ``out``; rerunning resumes.

    ``encoders`` maps a manifest column to an encoder registry name (built with
    ``encoder_config[column]``, ``device`` and ``dtype``, under ``torch.manual_seed(seed)``) or to
    an encoder object. ``stop_after_batches`` stops as a crash would, dropping the shard in
    progress; it exists to test resumption. ``engine`` runs the encoding (default: this
    process); see the module doc.
    """
    if batch_size < 1 or shard_size < 1:
        raise ConfigError("batch_size and shard_size must be at least 1")
    if tokens_dtype not in TOKEN_DTYPES:
        raise ConfigError(f"tokens_dtype must be one of {sorted(TOKEN_DTYPES)}")
    started = time.perf_counter()
    root = Path(out)
    manifest = load_manifest(manifest_path)
    _check_columns(manifest, encoders)
    report = EncodeReport(out=root, skipped=manifest_skips(manifest))
    budget = _Budget(stop_after_batches)
    root.mkdir(parents=True, exist_ok=True)
    with _writer_lock(root):
        meta = CacheMeta.read(root) if (root / "cache.json").is_file() else CacheMeta()
        for column, spec in encoders.items():
            config = dict((encoder_config or {}).get(column, {}))
            encoder, fields = build_encoder(spec, config, device=device, dtype=dtype, seed=seed)
            store = _open_column(
                root, meta, column, manifest, encoder, fields, store_tokens, tokens_dtype
            )
            column_report = ColumnReport(encoder=fields["encoder"])
            report.columns[column] = column_report
            plan = _plan_column(manifest, column, store, column_report, report.skipped)
            SourceIndex(store.dir).append(plan.sources)
            encode_started = time.perf_counter()
            worker = EncoderWorker(spec, store.info.fingerprint, config, device, dtype, seed)
            work = _Work(plan, batch_size, shard_size, budget)
            finished = _encode_column(encoder, worker, engine, store, work, column_report, report)
            report.encode_seconds += time.perf_counter() - encode_started
            if not finished:
                report.interrupted = True
                break
    report.seconds = time.perf_counter() - started
    write_errors(root, report.skipped)
    return report


def _check_columns(manifest: Manifest, encoders: Mapping[str, str | Encoder]) -> None:
    """Every column exists and its encoder takes its kind, before any model is loaded."""
    if not encoders:
        raise ConfigError("no encoders given; map at least one column to an encoder")
    modalities = manifest.schema.modalities
    unknown = [c for c in encoders if c not in modalities]
    if unknown:
        known = ", ".join(f"{c} ({k})" for c, k in modalities.items()) or "none"
        raise ConfigError(
            f"{', '.join(map(repr, unknown))} not modality column(s) of {manifest.path}; "
            f"its modality columns: {known}"
        )
    encoder_registry.list_encoders()
    for column, spec in encoders.items():
        factory = encoder_registry.encoders.get(spec) if isinstance(spec, str) else type(spec)
        _check_kind(column, modalities[column], spec, getattr(factory, "modality", None))


def _check_kind(column: str, kind: str, spec: str | Encoder, modality: str | None) -> None:
    if modality is not None and modality != kind:
        name = spec if isinstance(spec, str) else type(spec).__name__
        raise ConfigError(f"column {column!r} holds {kind} but encoder {name!r} encodes {modality}")


def _open_column(
    root: Path,
    meta: CacheMeta,
    column: str,
    manifest: Manifest,
    encoder: Encoder,
    fields: dict[str, Any],
    store_tokens: bool,
    tokens_dtype: str,
) -> ColumnStore:
    """The column's store; a new column is added to ``cache.json``, an old one must match."""
    kind = manifest.schema.modalities[column]
    _check_kind(column, kind, fields["encoder"], encoder.modality)
    existing = meta.columns.get(column)
    taken = {c.dirname for name, c in meta.columns.items() if name != column}
    info = ColumnInfo(
        column=column,
        kind=kind,
        encoder=fields["encoder"],
        config=fields["config"],
        fingerprint=fingerprint(fields),
        dim=int(encoder.dim),
        tokens=store_tokens,
        tokens_dtype=tokens_dtype,
        dirname=existing.dirname if existing else column_dirname(column, taken),
    )
    if existing is not None:
        conflicts = existing.storage_conflicts(info)
        if conflicts:
            raise ConfigError(
                f"column {column!r} of cache {root} was encoded differently "
                f"(cached encoder {existing.encoder!r}, requested {info.encoder!r}): "
                + "; ".join(conflicts)
                + f". Write to another --out folder, or delete {root / existing.dirname} "
                "and its entry in cache.json to re-encode."
            )
        info = existing
    else:
        meta.columns[column] = info
        meta.write(root)
    store = ColumnStore(root, info)
    store.remove_partial_shards()
    return store


def sample_name(sample: dict[str, Any], manifest: Manifest, index: int) -> str:
    """How reports name a sample: its id when the manifest has ids, else ``#n`` (1-based)."""
    id_column = manifest.schema.id
    if id_column is not None and sample.get(id_column) not in (None, ""):
        return str(sample[id_column])
    return f"#{index + 1}"


def _plan_column(
    manifest: Manifest,
    column: str,
    store: ColumnStore,
    report: ColumnReport,
    skipped: list[SkippedItem],
) -> _Plan:
    """Hash every value of the column; keep the contents that still need encoding."""
    kind = manifest.schema.modalities[column]
    sources = SourceIndex(store.dir) if kind != "text" else None
    plan = _Plan(pending=[], samples_of={}, sources={})
    rows = [(i, s) for i, s in enumerate(manifest.samples) if column in s]
    iterator = rows if kind == "text" else track(rows, f"hashing {column}")
    for index, sample in iterator:
        name = sample_name(sample, manifest, index)
        report.items += 1
        raw = sample[column]
        try:
            key = content_key(raw, kind)
        except InputError as err:
            skipped.append(SkippedItem(name, column, type(err).__name__, str(err)))
            report.skipped += 1
            continue
        if (
            sources is not None
            and isinstance(raw, str)
            and (record := sources.record(raw, key)) is not None
        ):
            plan.sources[raw] = record
        if key not in plan.samples_of:
            plan.samples_of[key] = []
            if key in store:
                report.reused += 1
            elif key not in store.rejected:
                plan.pending.append((key, raw))
        plan.samples_of[key].append(name)
        if key in store.rejected:
            failure = store.rejected[key]
            skipped.append(SkippedItem(name, column, failure["error"], failure["reason"]))
            report.skipped += 1
    return plan


@dataclass
class _Work:
    """A column's plan cut into shards and batches, with the run's batch budget."""

    plan: _Plan
    batch_size: int
    shard_size: int
    budget: _Budget

    def batches(self) -> list[tuple[Batch, bool]]:
        pending, size = self.plan.pending, self.shard_size
        groups = [pending[i : i + size] for i in range(0, len(pending), size)]
        return list(_batched_groups(groups, self.batch_size))


def _encode_column(
    encoder: Encoder,
    worker: EncoderWorker,
    engine: Engine | None,
    store: ColumnStore,
    work: _Work,
    column: ColumnReport,
    report: EncodeReport,
) -> bool:
    """Encode the pending contents shard by shard, in this process or on ``engine``; False
    when the batch budget ran out."""
    batches = work.batches()
    if engine is None or engine.in_process:
        with inference(encoder):
            return _write_shards(
                batches, lambda b: encode_batch(encoder, b), store, work, column, report
            )
    results = engine.map(worker, [batch for batch, _ in batches])
    try:
        return _write_shards(batches, lambda _: next(results), store, work, column, report)
    finally:
        results.close()


def _write_shards(
    batches: list[tuple[Batch, bool]],
    result_of: Callable[[Batch], BatchResult],
    store: ColumnStore,
    work: _Work,
    column: ColumnReport,
    report: EncodeReport,
) -> bool:
    """Gather each group's batch results and append them as one shard."""
    rows: list[Row] = []
    rejected: dict[str, dict[str, str]] = {}
    label = f"encoding {store.info.column} ({column.encoder})"
    for batch, last_of_group in track(batches, label, total=len(batches)):
        if not work.budget.take():
            return False
        batch_rows, batch_rejected = result_of(batch)
        rows += batch_rows
        rejected.update(batch_rejected)
        if last_of_group:
            store.append(rows, rejected)
            column.encoded += len(rows)
            for key, failure in rejected.items():
                for name in work.plan.samples_of[key]:
                    report.skipped.append(SkippedItem(name, store.info.column, **failure))
                    column.skipped += 1
            rows, rejected = [], {}
    return True


def _batched_groups(
    groups: list[list[tuple[str, Any]]], batch_size: int
) -> Iterator[tuple[list[tuple[str, Any]], bool]]:
    """Batches of each group, flagged True on the last batch of its group."""
    for group in groups:
        starts = range(0, len(group), batch_size)
        for start in starts:
            yield group[start : start + batch_size], start == starts[-1]


@contextlib.contextmanager
def _writer_lock(root: Path) -> Iterator[None]:
    """One writer per cache folder at a time (advisory lock where the OS offers one)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with (root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another encode is writing to {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
