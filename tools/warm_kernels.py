"""Compile the compositor's numba loops once, at install (`make install` runs this).

numba compiles each loop on first use and caches it beside `vision_synth/scene/kernels.py`; without
this step the first command after an install (or the first test) pays some 15 s of compiling. Composes
a few small images of every shipped procedural config, so that each loop is compiled for the array
types the compositor hands it.

Usage: python tools/warm_kernels.py
"""

from __future__ import annotations

import time
from pathlib import Path

from vision_synth.config import load_config
from vision_synth.runner import make_generator

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    start = time.perf_counter()
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path, {"image.width": 96, "image.height": 96}, num_images=8)
        if config.generator == "procedural":
            make_generator(config, show_progress=False).samples(list(range(8)))
    print(f"compiled the compositor's loops in {time.perf_counter() - start:.1f} s (cached for later runs)")


if __name__ == "__main__":
    main()
