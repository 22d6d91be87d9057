"""Trains one small model through the training loop and writes its final weights; run alone or
as several processes under ``torch.distributed.run`` by tests/train/test_distributed.py.

    python ddp_worker.py KIND OUT [--checkpoint DIR] [--stop-after N] [--resume] [--epochs N]
                                  [--mlflow STORE]

KIND is ``fusion``, ``align`` or ``projector``; every process writes ``OUT.rank<R>.pid`` when it
starts (so a test can kill one), and rank 0 writes the weights to ``OUT`` (safetensors).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from omnifuse.train import distributed


def fusion(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    from omnifuse.data.cache import CachedSample
    from omnifuse.models import ModelConfig, build_model
    from omnifuse.models.folder import model_state
    from omnifuse.train import TrainConfig, train

    g = torch.Generator().manual_seed(0)
    dims, tokens, classes = {"audio": 24, "image": 40}, {"audio": 6, "image": 4}, 5
    labels = torch.randint(0, classes, (90,), generator=g)
    centres = {m: torch.randn(classes, d, generator=g) for m, d in dims.items()}
    samples = []
    for i, label in enumerate(labels):
        features = {}
        for m, d in dims.items():
            t = centres[m][label] + torch.randn(tokens[m], d, generator=g)
            features[m] = (t, t.mean(0))
        samples.append(CachedSample(features, dict.fromkeys(dims, True), label, f"s{i}"))
    torch.manual_seed(0)
    config = ModelConfig(
        modalities=dims,
        fusion="gated",
        fusion_cfg={"dim": 32, "dropout": 0.0},
        head_cfg={"dropout": 0.0},
        classes=[str(c) for c in range(classes)],
    )
    model = build_model(config)
    settings = TrainConfig(
        epochs=args.epochs,
        batch_size=16,
        lr=3e-3,
        patience=None,
        progress=False,
        device="cpu",
        checkpoint_dir=args.checkpoint,
        stop_after_epochs=args.stop_after,
        resume=args.resume,
        mlflow={"tracking_uri": args.mlflow, "experiment": "ddp"} if args.mlflow else None,
    )
    train(model, samples, None, settings)  # type: ignore[arg-type]
    return model_state(model)


def align(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    from omnifuse.align.config import AlignTrain
    from omnifuse.align.data import ColumnFeatures, SplitData
    from omnifuse.align.heads import HeadSpec
    from omnifuse.align.model import AlignedModel, ModalitySpec, scale_key
    from omnifuse.align.train import Stage, fit_stage

    g = torch.Generator().manual_seed(0)
    latent = torch.randn(70, 6, generator=g)
    dims = {"t": 12, "i": 20}
    features = {
        c: ColumnFeatures(
            latent @ torch.randn(6, d, generator=g) + 0.1 * torch.randn(70, d, generator=g)
        )
        for c, d in dims.items()
    }
    names = [f"r{i}" for i in range(70)]
    split = SplitData(names, torch.arange(70), names, [{} for _ in names], features)
    torch.manual_seed(0)
    kinds = {"t": "text", "i": "image"}
    specs = {
        kinds[c]: ModalitySpec(c, {"name": "unused"}, HeadSpec(input_dim=d, dim=8, dropout=0.0))
        for c, d in dims.items()
    }
    model = AlignedModel(specs, [scale_key("t", "i")])
    stage = Stage("pairs", [("t", "i")], ["t", "i"], epochs=args.epochs, lr=0.01)
    settings = AlignTrain(batch_size=16, patience=None, progress=False)
    fit_stage(model, stage, split, None, settings, Path(tempfile.mkdtemp()), [])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def projector(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    from omnifuse.data.cache import CachedSample
    from omnifuse.projector.config import ProjectorTrainConfig
    from omnifuse.projector.data import TextSample
    from omnifuse.projector.decoder import DecoderConfig, DecoderLM, WordTokenizer
    from omnifuse.projector.lm import BuiltinLM
    from omnifuse.projector.model import ProjectorLM, SoftPrompt
    from omnifuse.projector.train import fit, soft_prompt_state

    g = torch.Generator().manual_seed(0)
    items: list[Any] = []
    for i in range(50):
        tokens = torch.randn(5, 16, generator=g)
        words = [4 + int(abs(w) * 7) % 12 for w in tokens[: 2 + i % 3, 0].tolist()]
        sample = CachedSample({"image": (tokens, tokens.mean(0))}, {"image": True}, None, f"s{i}")
        items.append((sample, TextSample("", "", [], words, None)))
    torch.manual_seed(0)
    vocab = ["<pad>", "<unk>", "<bos>", "<eos>", *(f"w{i}" for i in range(12))]
    decoder = DecoderLM(DecoderConfig(vocab_size=16, dim=32, layers=1, heads=2, dropout=0.0))
    lm = BuiltinLM(decoder.eval(), WordTokenizer(vocab))
    prompt = SoftPrompt({"image": 16}, lm.embed_dim, tokens={"image": 2}, kind="linear")
    model = ProjectorLM(lm, prompt)
    config = ProjectorTrainConfig(
        epochs=args.epochs, batch_size=8, lr=3e-3, progress=False, threads=None
    )
    fit(model, items, None, config)  # type: ignore[arg-type]
    return soft_prompt_state(model)


KINDS = {"fusion": fusion, "align": align, "projector": projector}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--checkpoint")
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mlflow", help="fusion: track the run in this MLflow file store")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    Path(f"{args.out}.rank{rank}.pid").write_text(str(os.getpid()))
    weights = KINDS[args.kind](args)
    if distributed.is_main():
        save_file({k: v.contiguous() for k, v in weights.items()}, str(args.out))
    distributed.shutdown()


if __name__ == "__main__":
    main()
