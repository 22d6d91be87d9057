"""The server's components, loaded on first use (or at start-up) and kept for its lifetime.

Loading is blocking and may take seconds (weights, an index), so it runs on worker threads
behind one lock per component: concurrent first requests wait for a single load. Each batched
component gets a :class:`DynamicBatcher`; components that must not run concurrently (each chat
model, each speech recogniser) get a single worker thread of their own: a FIFO queue per model,
so one model's work never waits behind another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from omnifuse.encoders.base import Encoder
from omnifuse.errors import MissingDependencyError, UnknownComponentError
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.batching import BatchObserver, DynamicBatcher
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.embedders import AlignedEmbedder, Embedder, EncoderEmbedder
from omnifuse.serve.predictor import Predictor

T = TypeVar("T")

ASR_ALIASES = {
    "faster-whisper": "faster-whisper",
    "whisper-tiny-en": "faster-whisper",
    "whisper-1": "faster-whisper",
    "pocketsphinx": "pocketsphinx",
}
"""Model names a transcription request may use (``whisper-1`` is what OpenAI clients send)."""
ASR_IDS = {"faster-whisper": "whisper-tiny-en", "pocketsphinx": "pocketsphinx"}


class Components:
    """Lazily loaded encoders, aligned model, fusion models, index, ASR and assistant."""

    def __init__(self, config: ServeConfig, observer: BatchObserver | None = None) -> None:
        self.config = config
        self.observer = observer
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._loaded: dict[str, Any] = {}
        self._batchers: dict[str, DynamicBatcher[Any, Any]] = {}
        self._serial: dict[str, ThreadPoolExecutor] = {}
        self._chosen: dict[tuple[str, str], Embedder] = {}

    # -- loading (blocking: call on a worker thread) -----------------------------------------

    def load(self, key: str, factory: Callable[[], T]) -> T:
        """The component ``key``, built once by ``factory``."""
        with self._guard:
            if key in self._loaded:
                return self._loaded[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._loaded:
                    return self._loaded[key]
            value = factory()
            with self._guard:
                self._loaded[key] = value
            return value

    def peek(self, key: str) -> Any:
        """Component ``key`` if it is already loaded, else None (never blocks on a load)."""
        with self._guard:
            return self._loaded.get(key)

    def loaded_names(self) -> list[str]:
        with self._guard:
            return sorted(self._loaded)

    def encoder(self, name: str, options: dict[str, Any] | None = None) -> Encoder:
        """A pretrained encoder by registry name (one instance per name and options)."""
        from omnifuse import encoders

        opts = dict(self.config.encoder_config.get(name, {})) if options is None else options
        key = f"encoder:{name}:{json.dumps(opts, sort_keys=True, default=str)}"
        return self.load(key, lambda: encoders.create(name, **opts).eval())

    def embedder_ids(self) -> list[str]:
        ids = list(dict.fromkeys(self.config.encoders.values()))
        if self.config.align_dir is not None:
            ids.append(self.aligned_id)
        return ids

    @property
    def generator_id(self) -> str | None:
        """The served generator's name (its folder's), or None without one."""
        folder = self.config.generator_dir
        return None if folder is None else Path(folder).name

    def generator(self) -> Any:
        """The text-to-image generator of ``generator_dir`` (blocking: may load it)."""

        def load() -> Any:
            from omnifuse.generate import load_generator

            assert self.config.generator_dir is not None
            return load_generator(self.config.generator_dir)

        return self.load("generator", load)

    @property
    def aligned_id(self) -> str:
        assert self.config.align_dir is not None
        return Path(self.config.align_dir).name

    def embedder(self, model: str) -> Embedder:
        """The embedder named ``model`` (a configured encoder or the aligned model)."""
        if self.config.align_dir is not None and model == self.aligned_id:
            return self.load(f"aligned:{model}", self._load_aligned)
        if model in self.config.encoders.values():
            return self.load(f"embedder:{model}", partial(self._encoder_embedder, model))
        raise APIError(
            404,
            f"no embedding model {model!r}; available: {', '.join(self.embedder_ids())}",
            code="model_not_found",
        )

    def _encoder_embedder(self, name: str) -> Embedder:
        return EncoderEmbedder(name, self.encoder(name))

    def chosen_embedder(self, modality: str, model: str = "auto") -> Embedder | None:
        """What :meth:`embedder_for` answered before for these arguments (None: not asked yet)."""
        return self._chosen.get((modality, model))

    def embedder_for(self, modality: str, model: str = "auto") -> Embedder:
        """The embedder for ``modality``: the named one, or under ``"auto"`` the aligned model
        when it reads that modality, else the configured encoder of that modality (blocking:
        may load it)."""
        chosen = self._choose_embedder(modality, model)
        self._chosen[(modality, model)] = chosen
        return chosen

    def _choose_embedder(self, modality: str, model: str) -> Embedder:
        if model != "auto":
            chosen = self.embedder(model)
        elif (
            self.config.align_dir is not None
            and modality in self.embedder(self.aligned_id).modalities
        ):
            chosen = self.embedder(self.aligned_id)
        elif modality in self.config.encoders:
            chosen = self.embedder(self.config.encoders[modality])
        else:
            raise APIError(400, f"no embedding model reads {modality}", code="unsupported_modality")
        if modality not in chosen.modalities:
            raise APIError(
                400,
                f"model {chosen.id!r} embeds {', '.join(chosen.modalities)}, not {modality}",
                code="unsupported_modality",
            )
        return chosen

    def _load_aligned(self) -> Embedder:
        from omnifuse.align import InvalidAlignedModelError, load_aligned

        assert self.config.align_dir is not None
        try:
            model = load_aligned(self.config.align_dir)
        except InvalidAlignedModelError as err:
            message = f"the aligned model cannot be loaded: {err}"
            raise APIError(503, message, code="model_unusable") from None
        return AlignedEmbedder(self.aligned_id, model)

    def consistency(self) -> Any:
        """The consistency checker: the aligned model with the calibration beside it (503
        while the folder has none)."""
        return self.load("consistency", self._load_consistency)

    def _load_consistency(self) -> Any:
        from omnifuse.align.consistency import ConsistencyChecker
        from omnifuse.errors import ConfigError

        assert self.config.align_dir is not None
        model = cast(AlignedEmbedder, self.embedder(self.aligned_id)).model
        try:
            return ConsistencyChecker.for_model(model, self.config.align_dir)
        except ConfigError as err:
            message = f"consistency checks are not available: {err}"
            raise APIError(503, message, code="not_calibrated") from None

    def model_folders(self) -> dict[str, Path]:
        """Fusion model folders under ``models_dir`` by name (those holding a config.json)."""
        root = self.config.models_dir
        if root is None:
            return {}
        return {
            p.name: p
            for p in sorted(Path(root).iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()
        }

    def predictor(self, name: str) -> Predictor:
        """The fusion model ``name`` of ``models_dir`` (blocking: may load it)."""
        loaded = self.peek(f"model:{name}")
        if loaded is not None:
            return loaded
        folders = self.model_folders()
        if name not in folders:
            known = ", ".join(folders) or "none"
            raise APIError(404, f"no model {name!r}; available: {known}", code="model_not_found")
        return self.load(f"model:{name}", lambda: self._load_predictor(name, folders[name]))

    def _load_predictor(self, name: str, folder: Path) -> Predictor:
        from omnifuse.models import InvalidModelError, load_model

        try:
            model = load_model(folder)
        except InvalidModelError as err:
            message = f"model {name!r} cannot be loaded: {err}"
            raise APIError(503, message, code="model_unusable") from None
        if not model.config.end_to_end:
            self._share_encoders(model)
        model.ensure_encoders()
        return Predictor(name, model)

    def _share_encoders(self, model: Any) -> None:
        """Fixed feature extractors with identical settings are one instance server-wide."""
        from omnifuse.models.encoders import encoder_options

        for column, spec in model.config.encoders.items():
            if column not in model.modalities:
                continue
            options = json.dumps(encoder_options(spec), sort_keys=True, default=str)
            seed = f":seed={spec['seed']}" if "seed" in spec else ""
            key = f"encoder:{spec['name']}:{options}{seed}"
            shared: Encoder = self.load(key, partial(_build_frozen, spec))
            if shared.dim == model.config.modalities[column]:
                model.encoders[column] = shared

    def index(self) -> Any:
        """The index, opened read-only. One on a Milvus server that does not answer raises
        :class:`IndexUnavailableError` (503) and is tried again on the next request."""
        if not self.config.has_index:
            raise APIError(404, "this server has no index (start it with --index)", code="no_index")
        return self.load("index", self._load_index)

    def _load_index(self) -> Any:
        from omnifuse.index import open_index

        config = self.config
        if config.index_uri is not None:
            return open_index(config.index_uri, collection=config.index_collection, read_only=True)
        assert config.index_dir is not None
        return open_index(Path(config.index_dir), read_only=True)

    def asr(self, model: str | None = None) -> Any:
        """The speech recogniser for a transcription ``model`` name (default: the configured)."""
        name = self.config.asr if model is None else ASR_ALIASES.get(model)
        if name is None:
            raise APIError(
                404,
                f"no transcription model {model!r}; available: {', '.join(self.asr_ids())}",
                code="model_not_found",
            )
        return self.load(f"asr:{name}", lambda: _create_asr(name))

    def asr_ids(self) -> list[str]:
        return [ASR_IDS.get(self.config.asr, self.config.asr), "pocketsphinx", "whisper-1"]

    def assistant(self) -> Any:
        return self.load("assistant", self._load_assistant)

    def _load_assistant(self) -> Any:
        """The assistant, sharing the server's speech recogniser, its EfficientNet (as the image
        labeller) and its decode limits."""
        try:
            from omnifuse.assistant.assistant import Assistant
            from omnifuse.assistant.perception import ImageClassifier, Perceiver
            from omnifuse.llm.base import create_llm
        except ModuleNotFoundError as err:
            raise MissingDependencyError(f"the assistant ({err.name})", extra="llm") from None
        llm = self.load("llm", lambda: create_llm(self.config.llm, **self.config.llm_config))
        asr = self.asr()
        perceiver = Perceiver(
            asr=asr,
            classifier=cast(ImageClassifier, self.encoder("effnet-lite0")),
            limits=self.config.limits.decode_limits(),
        )
        return Assistant(
            llm=llm,
            asr=asr,
            perceiver=perceiver,
            toolbox=self._toolbox(),
            grounding=self.config.grounding,
        )

    def _toolbox(self) -> Any:
        """The assistant's tools: every served fusion model (sharing the loaded model), the
        index with the aligned model that embeds for it, and the premise check of a calibrated
        aligned model. A model folder that cannot be read is
        left out here; ``/v1/predict`` reports it."""
        from omnifuse.assistant.tools import RetrievalTool, TaskModelTool, Toolbox
        from omnifuse.errors import OmnifuseError

        tools: list[Any] = []
        for name, folder in self.model_folders().items():
            loader = partial(lambda n: self.predictor(n).model, name)
            try:
                tools.append(TaskModelTool(folder, name=name, loader=loader))
            except (OmnifuseError, OSError, ValueError):
                continue
        if self.config.has_index and self.config.align_dir is not None:
            tools.append(RetrievalTool(self.index, self._aligned_vectors))
        if self.config.align_dir is not None:
            from omnifuse.align.consistency import CALIBRATION_FILE
            from omnifuse.assistant.premise import PremiseTool

            if (Path(self.config.align_dir) / CALIBRATION_FILE).is_file():
                tools.append(PremiseTool(self.consistency))
        return Toolbox(tools, enabled=self.config.tools)

    def _aligned_vectors(self, modality: str, raws: Sequence[Any]) -> Any:
        embedder = self.embedder(self.aligned_id)
        return embedder.run(modality, [embedder.prepare(modality, raw) for raw in raws])

    # -- execution (async) -------------------------------------------------------------------

    def batcher(
        self, key: str, run: Callable[[list[Any]], Sequence[Any]]
    ) -> DynamicBatcher[Any, Any]:
        """The batcher of component ``key`` (created on first use, in the running loop)."""
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = DynamicBatcher(key, run, self.config.batching, self.observer)
            self._batchers[key] = batcher
        return batcher

    async def serial(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on component ``key``'s own single thread (one call at a time), waiting at
        most the request timeout (then 504; the call itself finishes in the background)."""
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.serial_executor(key), fn, *args)
        timeout = self.config.limits.request_timeout_s
        try:
            return await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            raise APIError(504, f"{key} did not answer within {timeout:g} s") from None

    def serial_executor(self, key: str) -> ThreadPoolExecutor:
        """Component ``key``'s own single worker thread."""
        executor = self._serial.get(key)
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial-{key}")
            self._serial[key] = executor
        return executor

    def model_queue(self, model: str) -> ThreadPoolExecutor:
        """The queue of chat model ``model``: its generations run one at a time, in arrival
        order, beside every other model's and every request that needs no LLM."""
        return self.serial_executor(f"llm:{model}")

    def queue_depths(self) -> dict[str, int]:
        return {key: b.depth for key, b in self._batchers.items()}

    async def close(self) -> None:
        for batcher in list(self._batchers.values()):
            await batcher.close()
        self._batchers.clear()
        for executor in self._serial.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._serial.clear()
        with self._guard:
            loaded = list(self._loaded.values())
        for component in loaded:
            close = getattr(component, "close", None)
            if callable(close) and not isinstance(component, Encoder):
                with contextlib.suppress(Exception):  # best effort at shutdown
                    close()


def _build_frozen(spec: dict[str, Any]) -> Encoder:
    from omnifuse.models.encoders import build_encoder

    return build_encoder(spec).eval()


def _create_asr(name: str) -> Any:
    try:
        from omnifuse.speech.asr import create_asr
    except ModuleNotFoundError as err:
        raise MissingDependencyError(f"speech recognition ({err.name})", extra="llm") from None
    try:
        return create_asr(name)
    except UnknownComponentError as err:
        raise APIError(404, str(err), code="model_not_found") from None
