"""``--nproc``: a training command as several data-parallel processes, started by PyTorch's own
launcher (``torch.distributed.run``, the module behind ``torchrun``).

``omnifuse train --config C --nproc 2`` runs ``python -m torch.distributed.run --standalone
--nproc-per-node 2 -m omnifuse train --config C``; on several machines each one runs the same
command with ``--nnodes N --rdzv-endpoint HOST:PORT`` (the rendezvous on the first machine).
``torchrun ... -m omnifuse train ...`` works directly too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

Nproc = Annotated[
    int, typer.Option("--nproc", min=1, help="Data-parallel processes on this machine (torchrun).")
]
Nnodes = Annotated[
    int, typer.Option("--nnodes", min=1, help="Machines taking part; each runs this command.")
]
RdzvEndpoint = Annotated[
    str | None,
    typer.Option("--rdzv-endpoint", help="HOST:PORT of the rendezvous, with --nnodes above 1."),
]

OPTIONS = ("--nproc", "--nnodes", "--rdzv-endpoint")


def relaunch(nproc: int, nnodes: int = 1, endpoint: str | None = None) -> bool:
    """Start this very command again as ``nproc`` processes per machine under
    ``torch.distributed.run`` and wait for them; False (nothing done) for a single process or
    inside a process torchrun started. A failed process fails the command."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or (nproc == 1 and nnodes == 1):
        return False
    if nnodes > 1 and not endpoint:
        raise typer.BadParameter("--nnodes above 1 needs --rdzv-endpoint HOST:PORT")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if endpoint:
        command += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}"]
    else:
        command += ["--standalone"]
    command += ["-m", "omnifuse", *without_launch_options(sys.argv[1:])]
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
        from omnifuse.train.config import TrainingError

        raise TrainingError(
            f"data-parallel training failed: a process exited with code {code} "
            "(torchrun's report above names the rank and what went wrong)"
        )
    return True


def without_launch_options(argv: Sequence[str]) -> list[str]:
    """The arguments without ``--nproc``, ``--nnodes`` and ``--rdzv-endpoint`` and their values."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in OPTIONS)):
            out.append(arg)
    return out
