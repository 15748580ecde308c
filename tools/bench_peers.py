"""Benchmark a peer beside our generator, in one run: defect-synthesis 0.1.0 (Apache-2.0) making
labelled 512×512 images, against bench_512 end to end.

The peer lives in a virtual environment of its own (`.vision_synth/peers/defect-synthesis-0.1.0`,
made and filled with pip by this script on first use; never a dependency of vision_synth) and runs
as a worker process that this script drives over a pipe. Rounds alternate: a round of our images
(`runner.generate_indices` on configs/bench_512.yaml: compose, masks, RLE, JPEG, atomic writes,
shard records), then a round of the peer's, so a busy spell on a shared machine lands on both.

The peer's workload: its six generators (scratch, crack, stain, pitting, burn, texture warp) each
applied once per image through its own `DefectPipeline` (probability 1, `allow_multiple=True`),
on a clean 512×512 surface (one of 16 of our procedural textures, made before timing: the peer
draws no backgrounds), then the image written as JPEG at bench_512's quality and its anomaly mask
as PNG, with `cv2.imwrite` as the peer's exporters do. Its mask is one binary map of all six
defects, not one mask per instance, and there is no COCO file: ours writes more per image.
Both sides run one OpenCV thread (the figures are per process).

Usage: python tools/bench_peers.py [--images 300] [--peer-images 100] [--rounds 10]   (or: make bench-peers)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER = "defect-synthesis==0.1.0"
PEER_ENV = REPO / ".vision_synth" / "peers" / "defect-synthesis-0.1.0"

# The worker, run by the peer's own interpreter: reads {"count", "out"} lines, makes that many
# labelled images, answers {"wall", "cpu", "defect_pixels"}.
WORKER = r"""
import json, random, sys, time
import cv2, numpy as np
import defect_synthesis as ds

cv2.setNumThreads(1)
random.seed(0); np.random.seed(0)  # the peer draws from Python's and NumPy's global generators
seeds = [cv2.imread(p, cv2.IMREAD_COLOR) for p in sys.argv[2:]]
quality = int(sys.argv[1])
pipeline = ds.DefectPipeline()
for generator in (ds.ScratchGenerator(), ds.CrackGenerator(), ds.StainGenerator(), ds.PittingGenerator(),
                  ds.BurnGenerator(), ds.TextureWarpGenerator()):
    pipeline.add(generator, probability=1.0)
made = 0
print(json.dumps({"ready": ds.__version__}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    t0, c0, pixels = time.perf_counter(), time.process_time(), 0
    for _ in range(job["count"]):
        result = pipeline.apply(seeds[made % len(seeds)], allow_multiple=True)
        cv2.imwrite(f"{job['out']}/{made:06d}.jpg", result.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        cv2.imwrite(f"{job['out']}/{made:06d}_mask.png", result.anomaly_mask)
        pixels += result.defect_area
        made += 1
    print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "defect_pixels": pixels}),
          flush=True)
"""


def peer_python() -> Path:
    """The peer's interpreter, its environment made and `defect-synthesis==0.1.0` installed first."""
    python = PEER_ENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_ENV} and installing {PEER} (once)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(PEER_ENV)
    check = subprocess.run([str(python), "-c", "import defect_synthesis; print(defect_synthesis.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0 or check.stdout.strip() != PEER.split("==")[1]:
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER],
                                 capture_output=True, text=True)
        if install.returncode != 0:
            raise SystemExit(f"could not install {PEER} into {PEER_ENV}:\n{install.stderr[-3000:]}")
    return python


def clean_surfaces(folder: Path, size: int, count: int = 16) -> list[str]:
    """`count` of our procedural textures, size×size, as BGR PNG files for the peer to start from."""
    import cv2

    from vision_synth.scene.textures import TEXTURES, make_texture
    from vision_synth.seeding import rng_for

    paths = []
    for k in range(count):
        rgb = make_texture(TEXTURES[k % len(TEXTURES)], rng_for(0, k), size, size)
        path = folder / f"surface_{k:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=300, help="our images (end to end, bench_512)")
    parser.add_argument("--peer-images", type=int, default=100, help="the peer's images")
    parser.add_argument("--rounds", type=int, default=10, help="alternating measurement rounds")
    parser.add_argument("--out", default=None, help="folder for the images written (default: the system temp folder)")
    args = parser.parse_args()
    import cv2

    from vision_synth.config import load_config
    from vision_synth.runner import generate_indices, prepare_output
    from vision_synth.scene.compositor import Compositor

    cv2.setNumThreads(1)
    python = peer_python()
    config = load_config(args.config, num_images=args.images)
    if (config.image.width, config.image.height) != (512, 512):
        raise SystemExit(f"{args.config}: the peer comparison is at 512×512")
    compositor = Compositor(config)
    for i in range(16):  # warm up: the compiled kernels load each of their variants on first use
        compositor.sample(i)
    rounds = max(1, min(args.rounds, args.images, args.peer_images))
    ours, theirs = [0.0, 0.0], [0.0, 0.0]
    defect_pixels = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": ""}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        tmp = Path(tmp)
        (tmp / "peer").mkdir()
        surfaces = clean_surfaces(tmp, 512)
        worker = subprocess.Popen([str(python), "-c", WORKER, str(config.image.quality), *surfaces], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        version = json.loads(worker.stdout.readline())["ready"]

        def peer_round(count: int) -> dict:
            worker.stdin.write(json.dumps({"count": count, "out": str(tmp / "peer")}) + "\n")
            worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        peer_round(1)  # warm up (imports, first allocations), not counted
        out = tmp / "ours"
        prepare_output(out, config, overwrite=False)
        for r in range(rounds):
            chunk = list(range(r * args.images // rounds, (r + 1) * args.images // rounds))
            t0, c0 = time.perf_counter(), time.process_time()
            generate_indices(config, compositor, out, chunk, f"bench{r}.jsonl", show_progress=False)
            ours[0] += time.perf_counter() - t0
            ours[1] += time.process_time() - c0
            count = (r + 1) * args.peer_images // rounds - r * args.peer_images // rounds
            timing = peer_round(count)
            theirs[0] += timing["wall"]
            theirs[1] += timing["cpu"]
            defect_pixels += timing["defect_pixels"]
        worker.stdin.close()
        worker.wait()
        instances = sum(len(json.loads(line)["annotations"]) for shard in (out / ".vision_synth" / "shards").glob("*.jsonl")
                        for line in shard.read_text().splitlines())
    rate = lambda n, seconds: n / seconds  # noqa: E731
    print(f"{rounds} alternating rounds, one OpenCV thread each, images written to {args.out or 'the system temp folder'}")
    print(f"{'':58s} {'wall images/s':>14s} {'CPU images/s':>13s}")
    print(f"{'vision_synth bench_512 (COCO, ' + f'{instances / args.images:.1f} instance masks/image)':58s} "
          f"{rate(args.images, ours[0]):14.1f} {rate(args.images, ours[1]):13.1f}")
    print(f"{f'defect-synthesis {version} (six generators, image + mask files)':58s} "
          f"{rate(args.peer_images, theirs[0]):14.1f} {rate(args.peer_images, theirs[1]):13.1f}")
    print(f"{'ratio vision_synth / defect-synthesis':58s} "
          f"{rate(args.images, ours[0]) / rate(args.peer_images, theirs[0]):13.1f}x "
          f"{rate(args.images, ours[1]) / rate(args.peer_images, theirs[1]):12.1f}x")
    print(f"  (the peer's masks: {defect_pixels / args.peer_images / 512 / 512:.1%} of each image marked defective)")


if __name__ == "__main__":
    main()
