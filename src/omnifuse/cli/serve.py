"""``omnifuse serve``: the HTTP API (embeddings, predict, search, chat, transcription)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.serve import ServeConfig

MB = 1024 * 1024


def serve(
    models: Annotated[
        Path | None, typer.Option("--models", help="Folder of fusion model folders (/v1/predict).")
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Vector index folder (/v1/search).")
    ] = None,
    index_uri: Annotated[
        str | None,
        typer.Option(
            "--index-uri",
            help="Instead of --index: a Milvus server (http://HOST:PORT) that replicas share.",
        ),
    ] = None,
    index_collection: Annotated[
        str, typer.Option(help="With --index-uri: the collection on the server.")
    ] = "omnifuse_items",
    align: Annotated[
        Path | None,
        typer.Option(
            "--align",
            help="Aligned model folder: one embedding space for all; once calibrated, "
            "/v1/consistency and the assistant's premise check.",
        ),
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option(
            "--generator",
            help="Text-to-image generator folder (omnifuse generate train): "
            "/v1/images/generations.",
        ),
    ] = None,
    experiments: Annotated[
        Path | None,
        typer.Option(
            "--experiments",
            help="Folder of sweep and tune outputs (searched 4 levels deep) that the web "
            "page's Experiments tab and /v1/experiments show.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; other than loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8000,
    api_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accepted bearer token (repeatable; also read from OMNIFUSE_API_KEYS).",
        ),
    ] = None,
    allowed_root: Annotated[
        Path | None,
        typer.Option("--allowed-root", help="Requests may name files under this folder only."),
    ] = None,
    url_hosts: Annotated[
        list[str] | None,
        typer.Option("--allow-url-host", help="Host whose http(s) URLs may be fetched."),
    ] = None,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A name the Host header may carry besides localhost, 127.0.0.1, [::1] and "
            "--host (repeatable; '*' accepts any, which leaves the server open to DNS "
            "rebinding).",
        ),
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest request body, in MiB.")
    ] = 32.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest dynamic batch.")] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(min=0.0, help="Wait for more items under load (ms).")
    ] = 2.0,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Batch concurrent requests.")
    ] = True,
    llm: Annotated[str, typer.Option(help="Chat backend (registry llms).")] = "llama-cpp",
    asr: Annotated[str, typer.Option(help="Speech recogniser (registry asrs).")] = "faster-whisper",
    preload: Annotated[
        bool, typer.Option(help="Load the encoders, models and index before serving.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="PyTorch CPU threads (default: PyTorch's choice).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Uvicorn log level.")] = "info",
    grounding: Annotated[
        str, typer.Option(help="How strictly the assistant's replies stand on what it perceived.")
    ] = "normal",
    tools: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated assistant tools allowed (index, consistency, model:NAME, "
            "model:*)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAI-compatible where OpenAI has the endpoint)."""
    from omnifuse.serve import BatchingConfig, ServeConfig, ServeLimits
    from omnifuse.serve.runner import serve_forever

    config = ServeConfig(
        host=host,
        port=port,
        models_dir=models,
        index_dir=index,
        index_uri=index_uri,
        index_collection=index_collection,
        align_dir=align,
        generator_dir=generator,
        experiments_dir=experiments,
        api_keys=tuple(api_keys or ()),
        allowed_root=allowed_root,
        allowed_url_hosts=tuple(url_hosts or ()),
        allowed_hosts=tuple(allowed_hosts or ()),
        limits=replace(ServeLimits(), max_body_bytes=int(max_body_mb * MB)),
        batching=BatchingConfig(enabled=batching, max_batch=max_batch, max_wait_ms=max_wait_ms),
        llm=llm,
        asr=asr,
        grounding=grounding,
        tools=None if tools is None else tuple(t.strip() for t in tools.split(",") if t.strip()),
        preload=preload,
    ).with_api_keys_from_env()
    config.validate()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    serve_forever(config, log_level=log_level, on_bound=print_banner)


def print_banner(config: ServeConfig) -> None:
    """The URL, what is served, and a curl example to try."""
    auth = ' -H "Authorization: Bearer $OMNIFUSE_API_KEY"' if config.api_keys else ""
    console.print(f"[bold]omnifuse API[/] on [link={config.url}]{config.url}[/]  (docs: /docs)")
    for label, value in (
        ("models", config.models_dir),
        ("index", config.index_dir),
        ("index", config.index_uri and f"{config.index_uri} ({config.index_collection})"),
        ("aligned model", config.align_dir),
        ("generator", config.generator_dir),
        ("experiments", config.experiments_dir),
        ("allowed root", config.allowed_root),
    ):
        if value is not None:
            console.print(f"  {label}: {value}")
    console.print(f"  API keys: {'required' if config.api_keys else 'none (loopback only)'}")
    if "*" in config.allowed_hosts:
        console.print("  [yellow]any Host name is accepted[/] (open to DNS rebinding)")
    elif config.allowed_hosts:
        console.print(f"  also answers to: {', '.join(config.allowed_hosts)}")
    console.print("try:")
    console.print(
        f"  curl -s {config.url}/v1/embeddings{auth} -H 'Content-Type: application/json' "
        """-d '{"model": "minilm", "input": ["a red circle"]}'""",
        soft_wrap=True,
        markup=False,
    )
