"""Data-parallel training through torchrun (2 gloo processes on the CPU): the same weights as one
process on the same global batches, a checkpoint of 2 processes resumed in 1, a killed process
failing the job quickly, and ``omnifuse train --nproc 2`` end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def trained(kind: str, out: Path, *extra: str, processes: int = 1) -> dict[str, torch.Tensor]:
    launcher = TORCHRUN if processes == 2 else [sys.executable]
    done = run([*launcher, str(WORKER), kind, str(out), *extra])
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(str(out))


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[name] - b[name]).abs().max()) for name in a)


@pytest.mark.parametrize("kind", ["fusion", "align", "projector"])
def test_two_processes_train_as_one_does(kind: str, tmp_path: Path) -> None:
    one = trained(kind, tmp_path / "one.safetensors")
    two = trained(kind, tmp_path / "two.safetensors", processes=2)
    assert largest_difference(one, two) <= 1e-5
    # each process wrote its pid, and only rank 0 wrote weights
    assert {p.name for p in tmp_path.glob("two.safetensors.rank*.pid")} == {
        "two.safetensors.rank0.pid",
        "two.safetensors.rank1.pid",
    }


def test_a_checkpoint_of_two_processes_resumes_in_one(tmp_path: Path) -> None:
    whole = trained("fusion", tmp_path / "whole.safetensors", "--epochs", "3")
    checkpoint = str(tmp_path / "ckpt")
    part = ["--epochs", "3", "--checkpoint", checkpoint]
    trained("fusion", tmp_path / "part.safetensors", *part, "--stop-after", "1", processes=2)
    assert (tmp_path / "ckpt" / "latest.json").is_file()
    resumed = trained("fusion", tmp_path / "rest.safetensors", *part, "--resume")
    assert largest_difference(whole, resumed) <= 1e-5


def test_a_killed_process_fails_the_job_quickly(tmp_path: Path) -> None:
    out = tmp_path / "long.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        [*TORCHRUN, str(WORKER), "fusion", str(out), "--epochs", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    pid_file = Path(f"{out}.rank1.pid")
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not Path(f"{out}.rank0.pid").is_file():
        assert time.monotonic() < deadline and job.poll() is None, "the workers did not start"
        time.sleep(0.2)
    time.sleep(3)  # both are training now
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    killed = time.monotonic()
    try:
        output, _ = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail("the job still ran 60 s after a process was killed")
    assert time.monotonic() - killed < 60
    assert job.returncode != 0
    assert "rank" in output and ("SIGKILL" in output or "exitcode" in output)


def test_omnifuse_train_with_nproc_2(tmp_path: Path, digits: Path) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(
        yaml.safe_dump(
            {
                "data": {"manifest": str(digits), "target": "label"},
                "encoders": {
                    "image": {"name": "cnn-image", "image_size": 16, "channels": [8]},
                    "audio": {"name": "logmel-cnn", "dim": 16, "n_mels": 16},
                },
                "cache": {"dir": str(tmp_path / "cache"), "tokens": False},
                "model": {"fusion": "concat", "fusion_cfg": {"dim": 16}},
                "train": {"epochs": 2, "batch_size": 16, "progress": False},
                "output": str(tmp_path / "model"),
            }
        )
    )
    done = run(
        [sys.executable, "-m", "omnifuse", "train", "--config", str(run_file), "--nproc", "2"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    log = (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    assert len(log) == 2  # rank 0 alone logs
    assert done.stdout.count("test metrics") == 1  # and prints
