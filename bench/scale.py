"""Scale-out figures in one command: each section is its own script, run here in turn with its
own arguments (everything after ``--``), each printing its side-by-side table.

- ``ddp``: data-parallel training, 2 processes × 1 thread against 1 × 1 (bench/scale_ddp.py);
- ``ray``: Ray Data encoding against the local engine, and 2 workers against 1
  (bench/scale_ray.py);
- ``search``: omnifuse's exact, HNSW and IVF searches against raw FAISS on the same structure
  (bench/search.py);
- ``milvus``: a Milvus server process against Milvus Lite embedded (bench/scale_milvus.py).

    python bench/scale.py                    # every section, each with its defaults
    python bench/scale.py ddp ray            # some of them
    python bench/scale.py search -- --size 50000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = {
    "ddp": "scale_ddp.py",
    "ray": "scale_ray.py",
    "search": "search.py",
    "milvus": "scale_milvus.py",
}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sections", nargs="*", help=f"some of {', '.join(SECTIONS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    failed = []
    for name in args.sections or list(SECTIONS):
        print(f"\n## {name} ({SECTIONS[name]})\n", flush=True)
        done = subprocess.run([sys.executable, str(HERE / SECTIONS[name]), *extra], check=False)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"sections that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
