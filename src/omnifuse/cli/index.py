"""``omnifuse index``: build, extend, prune, search and describe vector indexes.

Items come from a manifest embedded by an aligned model (``--manifest`` + ``--model``), or from
precomputed vectors (``--vectors`` .npy + ``--ids`` one per line + optional ``--metadata`` JSONL).
An index built from a manifest remembers its model, so ``add`` and ``search`` find it alone.
An index lives in a folder, or on a Milvus server alone (``--uri http://HOST:PORT`` and
``--collection`` in place of the folder), where every process that reaches the server shares it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from omnifuse.cli.options import AddressOpt, EngineOpt, WorkersOpt, parse_options
from omnifuse.cli.render import console, console_err
from omnifuse.errors import ConfigError

if TYPE_CHECKING:
    from omnifuse.engines import Engine
    from omnifuse.index import Hit, VectorIndex
    from omnifuse.index.ingest import Embedder, IngestReport

app = typer.Typer(help="Build, update and search vector indexes.", no_args_is_help=True)
SKIPPED_SHOWN = 30
SOURCE_WIDTH = 60

ManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", "-m", help="A .jsonl/.csv manifest to embed.")
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model", help="Aligned model folder (default: the one the index was built with)."
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        help="Manifest columns to index, comma-separated (default: every one the model embeds)."
    ),
]
VectorsOpt = Annotated[
    Path | None, typer.Option("--vectors", help="Precomputed vectors, a float .npy of [N, D].")
]
IdsOpt = Annotated[Path | None, typer.Option("--ids", help="With --vectors: ids, one per line.")]
MetadataOpt = Annotated[
    Path | None,
    typer.Option("--metadata", help="With --vectors: one JSON object per line (optional)."),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="Items per embedding batch and per add.")]
FolderArg = Annotated[Path | None, typer.Argument(help="Index folder (or give --uri).")]
UriOpt = Annotated[
    str | None,
    typer.Option("--uri", help="A Milvus server (http://HOST:PORT) holding the index."),
]
CollectionOpt = Annotated[str, typer.Option(help="With --uri: the collection on the server.")]
DEFAULT_COLLECTION = "omnifuse_items"


def open_target(
    path: Path | None, uri: str | None, collection: str, *, read_only: bool = False
) -> VectorIndex:
    """The index in the folder ``path``, or in ``collection`` on the Milvus server ``uri``."""
    from omnifuse.index import open_index
    from omnifuse.index.milvus_server import is_server_uri

    if (path is None) == (uri is None):
        raise typer.BadParameter("give an index folder or --uri (a Milvus server), not both")
    if uri is None:
        assert path is not None
        return open_index(path, read_only=read_only)
    if not is_server_uri(uri):
        raise typer.BadParameter(f"--uri {uri!r} is not a server URI such as http://HOST:19530")
    return open_index(uri, collection=collection, read_only=read_only)


def load_model(path: Path | None, index: VectorIndex | None = None) -> Embedder:
    """The aligned model of ``--model``, else the one recorded in the index."""
    if path is None and index is not None and index.attributes.get("model"):
        path = Path(index.attributes["model"])
    if path is None:
        raise typer.BadParameter("give --model (an aligned model folder)")
    from omnifuse.align import load_aligned  # torch and the encoders load only when embedding

    return load_aligned(path)


def skipped_table(report: IngestReport) -> Table:
    table = Table(title=f"{len(report.skipped)} item(s) skipped", title_justify="left")
    for column in ("item", "error", "reason"):
        table.add_column(column)
    for item in report.skipped[:SKIPPED_SHOWN]:
        table.add_row(item.id, item.error, item.reason)
    if len(report.skipped) > SKIPPED_SHOWN:
        table.add_row("…", "", f"{len(report.skipped) - SKIPPED_SHOWN} more")
    return table


def info_table(index: VectorIndex) -> Table:
    table = Table(title=f"Index {index.location}", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key, value in (
        ("backend", index.backend),
        ("items", f"{len(index):,}"),
        ("dim", str(index.dim)),
        ("metric", index.metric),
        ("config", json.dumps(index.spec.config)),
        ("attributes", json.dumps(index.attributes)),
    ):
        table.add_row(key, value)
    return table


def hits_table(hits: list[Hit], metric: str) -> Table:
    closer = "higher" if metric == "ip" else "lower"
    table = Table(title=f"{len(hits)} hit(s) (score: {closer} is closer)", title_justify="left")
    for column in ("#", "id", "score", "modality", "label", "source"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for rank, hit in enumerate(hits, 1):
        meta = hit.metadata
        source = str(meta.get("source", ""))
        if len(source) > SOURCE_WIDTH:
            source = "…" + source[-SOURCE_WIDTH:]
        label = "" if meta.get("label") is None else str(meta["label"])
        table.add_row(
            str(rank), hit.id, f"{hit.score:.4f}", str(meta.get("modality", "")), label, source
        )
    return table


@dataclass(frozen=True)
class Source:
    """Where new items come from: a manifest embedded by a model, or vector files."""

    manifest: Path | None
    columns: str | None
    vectors: Path | None
    ids: Path | None
    metadata: Path | None

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.vectors is None):
            raise typer.BadParameter(
                "give either --manifest (with a model) or --vectors (with --ids)"
            )
        if self.vectors is not None and self.ids is None:
            raise typer.BadParameter("--vectors needs --ids (a text file, one id per line)")


def fill(
    index: VectorIndex,
    source: Source,
    embedder: Embedder | None,
    batch_size: int,
    engine: Engine | None = None,
    model: Path | None = None,
) -> None:
    """Add the items of a manifest (embedded here, or on ``engine`` by workers that each load
    the model folder ``model``) or of vector files, then print what happened."""
    from omnifuse.index.ingest import ingest_manifest, ingest_vectors

    if source.manifest is not None:
        from omnifuse.align import load_aligned

        assert embedder is not None
        columns = source.columns
        chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        loader = partial(load_aligned, model.resolve()) if model is not None else None
        report = ingest_manifest(
            index, source.manifest, embedder, columns=chosen, batch_size=batch_size,
            engine=engine, load_embedder=loader,
        )  # fmt: skip
        if report.skipped:
            console.print(skipped_table(report))
        bad = f", {report.bad_lines} bad manifest line(s)" if report.bad_lines else ""
        console.print(
            f"[green]added[/] {report.added} item(s), {len(report.skipped)} skipped{bad} in "
            f"{report.seconds:.1f} s ({report.items_per_second:.1f} items/s)",
            soft_wrap=True,
        )
        return
    assert source.vectors is not None and source.ids is not None
    added = ingest_vectors(
        index, source.vectors, source.ids, source.metadata, batch_size=batch_size
    )
    console.print(f"[green]added[/] {added} vector(s)", soft_wrap=True)


@app.command("build")
def build(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="New index folder.")] = None,
    uri: UriOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    manifest: ManifestOpt = None,
    model: ModelOpt = None,
    columns: ColumnsOpt = None,
    vectors: VectorsOpt = None,
    ids: IdsOpt = None,
    metadata: MetadataOpt = None,
    backend: Annotated[
        str | None,
        typer.Option(help="faiss-flat, faiss-hnsw (default), faiss-ivf or milvus (with --uri)."),
    ] = None,
    metric: Annotated[str, typer.Option(help="ip (inner product) or l2.")] = "ip",
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-O", help="Backend option KEY=VALUE (e.g. M=32, nprobe=16); repeatable."
        ),
    ] = None,
    batch_size: BatchOpt = 64,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = 1,
) -> None:
    """Create an index and fill it; bad manifest items are skipped and listed. With --uri the
    index is a collection on that Milvus server (and --out, if given, a folder naming it).
    With --engine ray the items are embedded by a Ray cluster's actors and added in order."""
    from omnifuse.engines import create_engine
    from omnifuse.index import create_index
    from omnifuse.index.ingest import read_vector_files

    source = Source(manifest, columns, vectors, ids, metadata)
    options = parse_options(option or [], "--option")
    if uri is not None:
        if backend not in (None, "milvus"):
            raise typer.BadParameter(f"--uri holds a milvus index, not --backend {backend}")
        backend = "milvus"
        options.update(uri=uri, collection=collection)
    elif out is None:
        raise typer.BadParameter("give --out (a new index folder) or --uri (a Milvus server)")
    embedder = load_model(model) if manifest is not None else None
    attributes: dict[str, Any] = {}
    if embedder is not None and model is not None:
        dim = embedder.dim
        attributes["model"] = str(model.resolve())
    else:
        assert vectors is not None and ids is not None
        dim = int(read_vector_files(vectors, ids, metadata)[1].shape[1])
    index = create_index(
        backend or "faiss-hnsw",
        out if out is not None else options.pop("uri"),
        dim=dim,
        metric=metric,
        attributes=attributes,
        **options,
    )
    runner = create_engine(engine, address=address, workers=workers)
    try:
        fill(index, source, embedder, batch_size, runner, model)
        index.flush()
        console.print(info_table(index))
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]: every added batch is kept; `index add` resumes")
        raise typer.Exit(code=130) from None
    finally:
        runner.close()
        index.close()


@app.command("add")
def add(
    path: FolderArg = None,
    uri: UriOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    manifest: ManifestOpt = None,
    model: ModelOpt = None,
    columns: ColumnsOpt = None,
    vectors: VectorsOpt = None,
    ids: IdsOpt = None,
    metadata: MetadataOpt = None,
    batch_size: BatchOpt = 64,
) -> None:
    """Add (or replace, by id) items in an existing index."""
    source = Source(manifest, columns, vectors, ids, metadata)
    index = open_target(path, uri, collection)
    try:
        embedder = load_model(model, index) if manifest is not None else None
        fill(index, source, embedder, batch_size)
        index.flush()
        console.print(f"{len(index):,} item(s) in {index.location}", soft_wrap=True)
    finally:
        index.close()


@app.command("delete")
def delete(
    path: FolderArg = None,
    uri: UriOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    ids: Annotated[str | None, typer.Option("--ids", help="Comma-separated ids.")] = None,
    ids_file: Annotated[Path | None, typer.Option("--ids-file", help="Ids, one per line.")] = None,
) -> None:
    """Remove items by id; unknown ids are ignored and counted."""
    wanted = [i.strip() for i in (ids or "").split(",") if i.strip()]
    if ids_file is not None:
        wanted += [
            ln.strip() for ln in ids_file.read_text(encoding="utf-8").splitlines() if ln.strip()
        ]
    if not wanted:
        raise typer.BadParameter("give --ids or --ids-file")
    index = open_target(path, uri, collection)
    try:
        removed = index.delete(wanted)
        console.print(
            f"[green]deleted[/] {removed} of {len(wanted)} id(s); {len(index):,} item(s) left",
            soft_wrap=True,
        )
    finally:
        index.close()


def query_vector(
    index: VectorIndex,
    model: Path | None,
    text: str | None,
    image: Path | None,
    audio: Path | None,
    vector: Path | None,
) -> np.ndarray:
    """The one query of ``search``: a .npy vector, or text/image/audio embedded by the model."""
    given = [
        (m, v) for m, v in (("text", text), ("image", image), ("audio", audio)) if v is not None
    ]
    if len(given) + (vector is not None) != 1:
        raise typer.BadParameter("give exactly one of --text, --image, --audio or --vector")
    if vector is not None:
        return np.load(vector, allow_pickle=False).astype(np.float32).reshape(1, -1)
    modality, raw = given[0]
    embedder = load_model(model, index)
    if modality not in embedder.modalities:
        raise ConfigError(f"the model embeds {list(embedder.modalities)}, not {modality}")
    return embedder.embed(modality, [raw if modality == "text" else str(raw)])


@app.command("search")
def search(
    path: FolderArg = None,
    uri: UriOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    text: Annotated[str | None, typer.Option("--text", help="Query text.")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Query image file.")] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="Query audio file.")] = None,
    vector: Annotated[Path | None, typer.Option("--vector", help="Query vector (.npy).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of hits.")] = 5,
    filter: Annotated[
        list[str] | None,
        typer.Option("--filter", "-f", help="FIELD=VALUE, FIELD>=N, FIELD<N ...; repeat to AND."),
    ] = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON lines.")] = False,
) -> None:
    """The nearest items to a query, optionally restricted by metadata."""
    from omnifuse.index import parse_cli_filters

    where = parse_cli_filters(filter or [])
    index = open_target(path, uri, collection, read_only=True)
    try:
        q = query_vector(index, model, text, image, audio, vector)
        hits = index.search(q, k=k, filter=where or None)[0]
        if as_json:
            for hit in hits:
                print(json.dumps({"id": hit.id, "score": hit.score, "metadata": hit.metadata}))
        else:
            console.print(hits_table(hits, index.metric))
    finally:
        index.close()


@app.command("info")
def info(
    path: FolderArg = None, uri: UriOpt = None, collection: CollectionOpt = DEFAULT_COLLECTION
) -> None:
    """Backend, size, dimension, metric, options and attributes of an index."""
    index = open_target(path, uri, collection, read_only=True)
    try:
        console.print(info_table(index))
    finally:
        index.close()
