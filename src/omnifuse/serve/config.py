"""Server settings: where models and the index live, who may call, and how much a request may cost.

:class:`ServeConfig` is plain data (no FastAPI import), so the CLI, the tests and the benchmarks
build it without starting anything. :meth:`ServeConfig.validate` refuses unsafe combinations
before a socket is opened: a non-loopback address without API keys, non-positive limits.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError
from omnifuse.io import DecodeLimits
from omnifuse.serve.hosts import HostAllowList

MB = 1024 * 1024
API_KEYS_ENV = "OMNIFUSE_API_KEYS"
"""Comma-separated API keys read by :func:`api_keys_from_env` (for keys kept out of argv)."""

DEFAULT_ENCODERS: dict[str, str] = {
    "text": "minilm",
    "image": "effnet-lite0",
    "audio": "whisper-tiny-en",
}
DEFAULT_ENCODER_CONFIG: dict[str, dict[str, Any]] = {"whisper-tiny-en": {"pad_to_30s": False}}
"""Whisper on the audible frames only: many times faster on the short clips a request carries."""


@dataclass(frozen=True)
class ServeLimits:
    """What one request may cost. Exceeding a size limit answers 413, a slow step 504.

    ``max_items`` bounds the inputs of one embeddings or predict request; ``max_tokens`` caps
    what a chat completion may ask the LLM to generate; ``max_image_pixels`` and
    ``max_audio_seconds`` are checked from headers before decoding (through
    :class:`omnifuse.io.DecodeLimits`).
    """

    max_body_bytes: int = 32 * MB
    max_media_bytes: int = 20 * MB
    max_items: int = 256
    max_text_chars: int = 100_000
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 300.0
    max_video_seconds: float = 120.0
    max_tokens: int = 512
    max_k: int = 1000
    request_timeout_s: float = 120.0
    url_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        _check_positive(self, "limits")

    def decode_limits(self) -> DecodeLimits:
        """The decoders' limits for media that arrived in a request."""
        return DecodeLimits(
            max_bytes=self.max_media_bytes,
            max_pixels=self.max_image_pixels,
            max_audio_seconds=self.max_audio_seconds,
            max_video_seconds=self.max_video_seconds,
            max_text_chars=self.max_text_chars,
        )


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching of concurrent requests per component (encoder or fusion model).

    A worker takes the first waiting item, adds every item already queued up to ``max_batch``,
    and, when requests are arriving concurrently, waits up to ``max_wait_ms`` for more before
    running the batch. ``max_queue`` items may wait at most (beyond that: 503), each for at most
    ``timeout_s`` (then 504). ``enabled=False`` runs items one at a time, in arrival order.
    """

    enabled: bool = True
    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 2048
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"batching.enabled must be true or false, got {self.enabled!r}")
        for name in ("max_batch", "max_queue", "timeout_s"):
            _check_number(getattr(self, name), f"batching.{name}", positive=True)
        _check_number(self.max_wait_ms, "batching.max_wait_ms", positive=False)


@dataclass(frozen=True)
class ServeConfig:
    """Everything :func:`omnifuse.serve.create_app` needs.

    - ``models_dir``: a folder whose subfolders are fusion model folders (``/v1/predict``);
    - ``index_dir``: a vector index folder (``/v1/search``);
    - ``index_uri``/``index_collection``: instead, an index on a Milvus server, which several
      serving processes (replicas behind a load balancer) share;
    - ``align_dir``: an aligned model; when given, ``/v1/embeddings`` can embed every modality
      it was trained on into one space, and search queries use it;
    - ``generator_dir``: a text-to-image generator folder (``/v1/images/generations``);
    - ``experiments_dir``: a folder of sweep and tune outputs, shown by ``/v1/experiments``
      and the web page's Experiments tab;
    - ``api_keys``: bearer tokens accepted on ``/v1/*`` and ``/metrics`` (none: open, which is
      only allowed on a loopback address);
    - ``allowed_root``: requests may name files under this folder (none: no server paths);
    - ``allowed_url_hosts``: hosts whose http(s) URLs may be fetched (none: no fetching);
    - ``allowed_hosts``: names a request's ``Host`` header may carry besides the loopback names
      and ``host`` (``"*"``: any, which gives up the defence against DNS rebinding; see
      :mod:`omnifuse.serve.hosts`);
    - ``encoders``/``encoder_config``: the pretrained encoder per modality and their options;
    - ``llm``/``llm_config`` and ``asr``: the chat backend and the speech recogniser;
    - ``preload``: load every configured component at start-up instead of on first use;
    - ``grounding``/``tools``: how strictly the assistant's replies must stand on what it
      perceived, and which of its tools may run (None: all — every model of ``models_dir``,
      and the index when ``align_dir`` embeds for it).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    models_dir: Path | None = None
    index_dir: Path | None = None
    index_uri: str | None = None
    index_collection: str = "omnifuse_items"
    align_dir: Path | None = None
    generator_dir: Path | None = None
    experiments_dir: Path | None = None
    api_keys: tuple[str, ...] = ()
    allowed_root: Path | None = None
    allowed_url_hosts: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    limits: ServeLimits = field(default_factory=ServeLimits)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    encoders: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENCODERS))
    encoder_config: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_ENCODER_CONFIG.items()}
    )
    llm: str = "llama-cpp"
    llm_config: dict[str, Any] = field(default_factory=dict)
    asr: str = "faster-whisper"
    preload: bool = False
    grounding: str = "normal"
    tools: tuple[str, ...] | None = None

    def validate(self) -> ServeConfig:
        """Raise :class:`ConfigError` for a setting that is unusable or unsafe; return self."""
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port!r}")
        if not is_loopback(self.host) and not self.api_keys:
            raise ConfigError(
                f"refusing to serve on {self.host!r} without API keys: a non-loopback address "
                f"is reachable from other machines; pass --api-key or set {API_KEYS_ENV}"
            )
        HostAllowList(self.host, self.allowed_hosts)  # ConfigError for a malformed name
        from omnifuse.assistant.grounding import check_strictness

        check_strictness(self.grounding)
        for key in self.api_keys:
            if not isinstance(key, str) or len(key) < 8 or key.strip() != key:
                raise ConfigError("API keys must be strings of at least 8 characters, no spaces")
        folders = ("models_dir", "index_dir", "align_dir", "generator_dir", "experiments_dir")
        for name in (*folders, "allowed_root"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_dir():
                raise ConfigError(f"{name} {str(path)!r} is not a folder")
        if self.index_uri is not None:
            from omnifuse.index.milvus_server import is_server_uri

            if self.index_dir is not None:
                raise ConfigError("give index_dir (a folder) or index_uri (a server), not both")
            if not is_server_uri(self.index_uri):
                raise ConfigError(f"index_uri {self.index_uri!r} is not like http://HOST:19530")
        unknown = sorted(set(self.encoders) - {"text", "image", "audio"})
        if unknown:
            raise ConfigError(f"encoders: unknown modality {unknown}; use text, image, audio")
        return self

    def with_api_keys_from_env(self) -> ServeConfig:
        """This config with the keys of ``OMNIFUSE_API_KEYS`` added."""
        extra = api_keys_from_env()
        return replace(self, api_keys=tuple(dict.fromkeys((*self.api_keys, *extra))))

    @property
    def has_index(self) -> bool:
        return self.index_dir is not None or self.index_uri is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def api_keys_from_env() -> tuple[str, ...]:
    """Keys listed in ``OMNIFUSE_API_KEYS`` (comma-separated; blanks ignored)."""
    raw = os.environ.get(API_KEYS_ENV, "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_positive(obj: object, prefix: str) -> None:
    for item in fields(obj):  # type: ignore[arg-type]
        _check_number(getattr(obj, item.name), f"{prefix}.{item.name}", positive=True)


def _check_number(value: object, name: str, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok and positive:
        ok = value > 0  # type: ignore[operator]
    elif ok:
        ok = value >= 0  # type: ignore[operator]
    if not ok:
        kind = "a positive number" if positive else "a number ≥ 0"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
