"""Benchmark the procedural generator end to end against its floor, in one run.

End to end = compose + masks + RLE + JPEG encode + atomic file write + shard record, per process
(the runner's own loop). Floor = only JPEG-encode and RLE-encode the same images and masks.
The two are measured in alternating rounds over the same samples (end to end over a round, then
each sample composed and floor-encoded in turn), so that a busy spell on a shared machine lands
on both sides of the ratio.
Prints images/s for each and the ratio, from wall-clock time and from this process's CPU time.
After each round the same samples are also composed back to back at full size and at
`--small-side` pixels (default 64): the small images' share of the time is what composing costs
whatever the pixels (the interpreter, OpenCV and numpy calls, small arrays), the part that work on
pixels cannot reduce.

`--diversity` then measures what the texture bank does to the images, on N images a run (default
2,000) written and read back as the dataset is: near-duplicate pairs by the quality gate's own
perceptual-hash check (`quality/duplicates.py`, its default of at most 4 differing bits), and
FID-proxy (the gate's random-init Inception-v3, 2048-d) between a run with the bank and a run
without it (`background: {bank: false}`: every texture drawn anew, as before the bank), beside the
FID-proxy between two seeds without it. The run with the bank has seed 1 and is compared with seed
0 without it; the two seeds without it are 1 and 0, so both distances span the same two seeds and
the same objects and defects (the background has a stream of its own), and differ only in how seed
1's backgrounds were drawn. The features run at about 5 images/s on 2 CPU cores: some 20 minutes
for 3 × 2,000 (`--fid-images` takes the first N of each run instead).

Usage: python tools/bench_compositor.py [--config configs/bench_512.yaml] [--images 300] [--rounds 10] [--small-side 64]
       python tools/bench_compositor.py --diversity [--diversity-images 2000] [--fid-images 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vision_synth import masks as mask_ops
from vision_synth.imageio import encode_image
from vision_synth.config import load_config
from vision_synth.runner import generate_indices, prepare_output
from vision_synth.scene.compositor import Compositor

REPO = Path(__file__).resolve().parents[1]


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10, help="alternating measurement rounds")
    parser.add_argument("--out", default=None, help="folder for the images written (default: the system temp folder)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (default 1: the figure is per process, one process per core)")
    parser.add_argument("--small-side", type=int, default=64,
                        help="side of the small images whose compose time is the per-image cost that does not "
                             "scale with pixels (0: skip)")
    parser.add_argument("--diversity", action="store_true",
                        help="then near-duplicates and FID-proxy with and without the texture bank (slow)")
    parser.add_argument("--diversity-images", type=int, default=2000, help="images a run for --diversity")
    parser.add_argument("--fid-images", type=int, default=None,
                        help="of those, how many (the first) go into FID-proxy (default: all)")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)

    config = load_config(args.config, num_images=args.images)
    compositor = Compositor(config)
    for i in range(16):  # warm up: imports, and the compiled kernels' variants (each loads on first use)
        compositor.sample(i)
    small = None
    if args.small_side:
        side = args.small_side
        small = Compositor(load_config(args.config, {"image.width": side, "image.height": side}, num_images=args.images))
        for i in range(16):
            small.sample(i)
    n = args.images
    rounds = max(1, min(args.rounds, n))
    totals = {"end": [0.0, 0.0], "compose": [0.0, 0.0], "floor": [0.0, 0.0], "small": [0.0, 0.0],
              "back to back": [0.0, 0.0]}
    instances = 0

    def add(key, wall, cpu):
        totals[key][0] += wall
        totals[key][1] += cpu

    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        out = Path(tmp) / "out"
        prepare_output(out, config, overwrite=False)
        for r in range(rounds):
            chunk = list(range(r * n // rounds, (r + 1) * n // rounds))
            wall, cpu, _ = _timed(lambda: generate_indices(config, compositor, out, chunk, f"bench{r}.jsonl",
                                                           show_progress=False))
            add("end", wall, cpu)
            for i in chunk:  # one sample at a time, as the runner holds them
                wall, cpu, sample = _timed(lambda: compositor.sample(i))
                add("compose", wall, cpu)
                wall, cpu, _ = _timed(lambda: (encode_image(sample.image, config.image.format, config.image.quality),
                                               mask_ops.encode_rle(sample.instances.masks)))
                add("floor", wall, cpu)
                instances += len(sample.instances)
            if small is not None:  # after the round, each composed back to back
                wall, cpu, _ = _timed(lambda: [small.sample(i) for i in chunk])
                add("small", wall, cpu)
                wall, cpu, _ = _timed(lambda: [compositor.sample(i) for i in chunk])
                add("back to back", wall, cpu)

    w, h = config.image.width, config.image.height
    print(f"workload: {config.name}, {n} images {w}x{h} {config.image.format}, {instances / n:.1f} instances/image, "
          f"{rounds} alternating rounds")
    print(f"{'':46s} {'wall images/s':>14s} {'CPU images/s':>13s}")
    for label, key in (("end to end (compose, masks, RLE, JPEG, write)", "end"),
                       ("  of which compose only", "compose"),
                       ("floor (JPEG encode + RLE encode only)", "floor")):
        wall, cpu = totals[key]
        print(f"{label:46s} {n / wall:14.1f} {n / cpu:13.1f}")
    (end_wall, end_cpu), (floor_wall, floor_cpu) = totals["end"], totals["floor"]
    print(f"{'ratio end to end / floor':46s} {end_wall / floor_wall:13.2f}x {end_cpu / floor_cpu:12.2f}x")
    if small is not None:
        # the same scenes at a side of a few dozen pixels: what composing costs whatever the pixels
        # (interpreter, calls, small arrays), beside the full-size compose, both back to back
        full, tiny = totals["back to back"][0], totals["small"][0]
        print(f"compose back to back: {n / full:.1f} images/s at {w}x{h}, {n / tiny:.1f} at "
              f"{args.small_side}x{args.small_side} (the same scenes): {tiny / full:.0%} of composing does not "
              "scale with pixels")
    if args.diversity:
        diversity(args.config, args.diversity_images, args.fid_images or args.diversity_images, args.out)


def with_bank(config, bank: bool, seed: int):
    """`config` with the texture bank on or off and another seed."""
    background = config.scene.background
    if background.kind != "texture":
        raise SystemExit(f"{config.name}: --diversity needs a texture background")
    scene = config.scene.model_copy(update={"background": background.model_copy(update={"bank": bank})})
    return config.model_copy(update={"scene": scene, "seed": seed})


def written_run(config, folder: Path):
    """Generate `config` into `folder` as a dataset is written, and yield its images read back."""
    from vision_synth.coco.writer import image_file_name
    from vision_synth.imageio import read_image

    prepare_output(folder, config, overwrite=False)
    generate_indices(config, Compositor(config), folder, list(range(config.num_images)), "run.jsonl",
                     show_progress=False)
    for i in range(config.num_images):
        yield read_image(folder / "images" / image_file_name(i, config.image.format))


def diversity(config_path: str, n: int, n_fid: int, out: str | None) -> None:
    from vision_synth.quality.duplicates import hash_pairs, phash
    from vision_synth.quality.features import load_extractor
    from vision_synth.quality.fidelity import frechet_distance
    from vision_synth.quality.spec import DuplicatesSpec, FidelitySpec

    base = load_config(config_path, num_images=n)
    fidelity, max_bits = FidelitySpec(), DuplicatesSpec().phash_max_distance
    extractor = load_extractor("proxy", layer=fidelity.layer, batch_size=fidelity.batch_size, seed=fidelity.seed)
    runs = {"bank, seed 1": with_bank(base, True, 1), "no bank, seed 1": with_bank(base, False, 1),
            "no bank, seed 0": with_bank(base, False, 0)}
    features, duplicates = {}, {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for k, (name, config) in enumerate(runs.items()):
            hashes = []

            def hashed(images):
                for i, image in enumerate(images):
                    hashes.append(phash(image))
                    if i < n_fid:
                        yield image

            features[name] = extractor(hashed(written_run(config, Path(tmp) / f"run{k}")))
            duplicates[name] = len(hash_pairs(np.stack(hashes), None, max_bits))
            print(f"  {name}: {n} images hashed, {len(features[name])} featurised "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"diversity on {n} {base.name} images a run (FID-proxy on the first {min(n, n_fid)}); "
          f"features: {extractor.label}")
    print(f"near-duplicate pairs (perceptual hash within {max_bits} bits, the quality gate's check): "
          + ", ".join(f"{name} {count}" for name, count in duplicates.items()))
    change = frechet_distance(features["bank, seed 1"], features["no bank, seed 0"])
    seeds = frechet_distance(features["no bank, seed 1"], features["no bank, seed 0"])
    same = frechet_distance(features["bank, seed 1"], features["no bank, seed 1"])
    print(f"FID-proxy, bank seed 1 vs no bank seed 0 (with the change vs without): {change:10.4f}")
    print(f"FID-proxy, no bank seed 1 vs no bank seed 0 (two seeds without it):    {seeds:10.4f}")
    print(f"  (same scenes, backgrounds only: bank seed 1 vs no bank seed 1: {same:.4f})")
    print(f"with the change within two seeds' distance: {'yes' if change <= seeds else 'NO'}; "
          f"near-duplicates with the bank: {duplicates['bank, seed 1']}")


if __name__ == "__main__":
    main()
