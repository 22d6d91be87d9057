"""A Ray encode driver for the driver-kill test: ``python encode_driver.py MANIFEST OUT ADDRESS
DELAY`` encodes the manifest's images with the ``Slow`` encoder (``DELAY`` seconds per batch) on
the Ray at ``ADDRESS``, one actor, shards of 4, and prints its counts as one JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import engine_encoders
from ray import cloudpickle

from omnifuse.data.cache import encode_manifest
from omnifuse.engines import create_engine


def main() -> None:
    manifest, out, address, delay = sys.argv[1:5]
    cloudpickle.register_pickle_by_value(engine_encoders)
    torch.manual_seed(0)
    encoder = engine_encoders.Slow(dim=16, image_size=16, channels=[8])
    encoder.delay = float(delay)
    with create_engine("ray", address=address, workers=1) as engine:
        report = encode_manifest(
            manifest, {"image": encoder}, Path(out), batch_size=2, shard_size=4, engine=engine
        )
    column = report.columns["image"]
    print(
        json.dumps({"encoded": column.encoded, "reused": column.reused, "skipped": column.skipped})
    )


if __name__ == "__main__":
    main()
