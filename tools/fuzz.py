"""Fuzz the `vision-synth` commands with broken input: seeded, every case replayable by its id.

Three families of cases, each made by mutating real inputs of this repository:
  config-N  a config: the dataset configs of configs/ (and the scenes they name, inline or as a scene
            file), augment specs and albumentations pipelines (configs/pipelines), rare policies
            (configs/policies) and quality specs (README's quality: section), mutated in types,
            ranges, unknown keys, unicode, huge and negative numbers, long names, path tricks and
            bytes; run through validate and generate, augment --spec/--pipeline, augment-rare
            --config, check --config
  coco-N    a COCO file of a small dataset made by `generate`: missing keys, wrong types, duplicate
            or zero ids, bad RLE, polygons under 3 points, boxes outside the image, non-UTF-8 bytes,
            truncated JSON; run through augment, augment-rare, check, split, merge, export, preview
  image-N   a broken or unusual image (empty, truncated, decompression bombs, 16-bit, CMYK, palette,
            EXIF-rotated, animated GIF/APNG, ...) as a scene background, region mask or sprite, or as
            an image of a dataset

Every command runs in this process (`vision_synth.cli.main`, tiny sizes: 1-2 images of 32-64 px),
and every `--subprocess-every`-th case once more through a real `python -m vision_synth` on a fresh
copy of its input (same exit code, same message). A run fails the fuzz when
  - an exception escapes `main` (anything but the product's VisionSynthError family, which main turns
    into an exit code), or stderr holds "Traceback";
  - the exit code is not 0, 2 or 3;
  - exit 2 is not one line `error: ...` naming a file (or flag);
  - something is half-written: after a failed run its --out is as it was before (absent, or the
    earlier content) and the dataset folder it read is unchanged; no `.partial-`/`.old-` stage or
    temp file is left anywhere, whatever the outcome;
  - a success wrote a dataset that the COCO reader refuses;
  - it runs past `--timeout` seconds.

Usage:
  python tools/fuzz.py                                  # full size: 2,000 configs, 1,000 COCO files, 200 images
  python tools/fuzz.py --seed 1 --configs 30 --coco 20 --images 10 --subprocess-every 20
  python tools/fuzz.py --seed 1 --case coco-17          # replay one case: each command and its output
Exit code 0 when no run failed, 1 otherwise (each failure printed with its replay command).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FAMILIES = {"config": 1, "coco": 2, "image": 3}  # the rng stream of each family: rng_for(seed, index, stream)
FULL = {"config": 2000, "coco": 1000, "image": 200}
ENTRY_POINTS = ("validate", "generate", "augment", "augment-rare", "check", "split", "merge", "export", "preview")


# ----------------------------------------------------------------------------------- judging runs
@dataclass
class Run:
    """One command of a case: its argv, the new output it writes (None: it writes in place), the
    folders a failed run must leave unchanged, and the COCO file a success must have written."""

    entry: str
    argv: list[str]
    out: Path | None = None
    watch: list[Path] = field(default_factory=list)
    writes: Path | None = None
    # run only when the case's runs so far succeeded (else it is not a run) and this says yes (a config
    # small enough to generate in a fuzz run; else it is counted as skipped)
    only_if: Callable[[], bool] | None = None


@dataclass
class Case:
    id: str
    what: str  # the input and its mutations, in words
    root: Path
    runs: list[Run]


@dataclass
class Result:
    case: str
    entry: str
    outcome: str  # ok, error, rejected, or FAIL
    detail: str = ""
    argv: list[str] = field(default_factory=list)


class CaseTimeout(BaseException):
    """Raised by the alarm in a run that takes longer than --timeout (not an Exception: nothing swallows it)."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _tree(path: Path) -> Any:
    """What a folder (or file) holds, to tell whether a run changed it: None when absent."""
    if not (path.exists() or path.is_symlink()):
        return None
    if path.is_file():
        return hashlib.sha1(path.read_bytes()).hexdigest()
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else (
            "link" if p.is_symlink() else "dir")
    return out


def _leftovers(root: Path) -> list[str]:
    """Stages (.NAME.partial-PID-…, .NAME.old-PID-…) and temp files anywhere under the case folder."""
    found = []
    for p in root.rglob(".*"):
        if ".partial-" in p.name or ".old-" in p.name or (p.name.endswith(".tmp") and p.name.startswith(".")):
            found.append(str(p.relative_to(root)))
    return sorted(found)


def call_main(argv: list[str], timeout: float) -> tuple[Any, str, str, str | None]:
    """(exit code, stdout, stderr, traceback text of an exception that escaped main or None)."""
    from vision_synth.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: Any = None
    escaped = None
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if exc.code is not None else 0
            except CaseTimeout:
                escaped = f"timeout: still running after {timeout:g} s"
            except BaseException:  # noqa: BLE001 - the very thing the fuzz looks for
                escaped = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue(), escaped


def _names_a_source(message: str) -> bool:
    """An error line names what is wrong: a path (absolute or relative), a flag, or the command line."""
    return "/" in message or "--" in message or "command line" in message or ".yaml" in message \
        or ".json" in message


def judge(run: Run, case: Case, timeout: float) -> Result:
    before = {p: _tree(p) for p in ([run.out] if run.out else []) + run.watch}
    code, _, err, escaped = call_main(run.argv, timeout)
    fail = lambda detail: Result(case.id, run.entry, "FAIL", detail, run.argv)  # noqa: E731
    if escaped is not None:
        last = escaped.strip().splitlines()[-1]
        return fail(last if last.startswith("timeout") else f"traceback: {last}\n{escaped}")
    if "Traceback" in err:
        return fail(f"stderr holds a traceback:\n{err[-3000:]}")
    if code not in (0, 2, 3):
        return fail(f"exit code {code!r}: {err.strip()[-500:]}")
    lines = err.strip().splitlines()
    if code == 2:
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return fail(f"exit 2 without one 'error: ...' line: {err.strip()[-1500:]!r}")
        if not _names_a_source(lines[0]):
            return fail(f"error names no file, key or flag: {lines[0]}")
    if code == 2:
        for path, content in before.items():
            if _tree(path) != content:
                return fail(f"exit {code}, yet {path.relative_to(case.root)} changed (half-written)")
    left = _leftovers(case.root)
    if left:
        return fail(f"exit {code}, stages or temp files left: {left[:5]}")
    if code == 0 and run.writes is not None:
        from vision_synth.coco.reader import load_coco
        from vision_synth.errors import VisionSynthError

        try:
            load_coco(run.writes, run.writes.parent / "images" if (run.writes.parent / "images").is_dir() else None)
        except VisionSynthError as exc:
            return fail(f"exit 0, but the reader refuses what it wrote: {exc}")
    outcome = {0: "ok", 2: "error", 3: "rejected"}[code]
    return Result(case.id, run.entry, outcome, lines[-1] if code == 2 else "", run.argv)


def judge_subprocess(run: Run, case: Case, twin: Case, in_process: Result, timeout: float) -> Result | None:
    """The same run through `python -m vision_synth` on a fresh copy of the input (`twin`): a failure
    when it tracebacks or its exit code or message differs from the in-process run's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    argv = [a.replace(str(case.root), str(twin.root)) for a in run.argv]
    try:
        proc = subprocess.run([sys.executable, "-m", "vision_synth", *argv], capture_output=True, text=True,
                              env=env, cwd=twin.root / "project", timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return Result(case.id, run.entry, "FAIL", "subprocess: timeout", run.argv)
    fail = lambda detail: Result(case.id, run.entry, "FAIL", f"subprocess: {detail}", run.argv)  # noqa: E731
    if "Traceback" in proc.stderr:
        return fail(f"traceback:\n{proc.stderr[-3000:]}")
    expected = {"ok": 0, "error": 2, "rejected": 3}[in_process.outcome]
    if proc.returncode != expected:
        return fail(f"exit {proc.returncode}, in-process {expected}: {proc.stderr.strip()[-500:]}")
    if expected == 2:
        message = proc.stderr.strip().splitlines()[-1].replace(str(twin.root), str(case.root))
        if message != in_process.detail:
            return fail(f"message {message!r} differs from the in-process {in_process.detail!r}")
    return None


# ------------------------------------------------------------------------------------- mutations
HUGE = [2**31, 2**63, 10**18, 10**30, -(10**18), 1e308, -1e308, float("inf"), float("-inf"), float("nan")]
NUMBERS = [0, 1, -1, -7, 0.5, -0.5, 1e-320, 3, 255, 256, 65536, 16385, *HUGE]
UNICODE = ["ü", "名前", "🙂", "\u202eevil", "e\u0301", "\u200b", "Ω" * 200, "a\x00b", "tab\there", "line\nbreak"]
LONG = ["x" * 300, "名" * 100, "a/" * 2100, "d" * 5000]
PATHS = ["/etc/hostname", "../../../../etc/passwd", "~", "~/no_such_file.yaml", "/", ".", "..", "", "/dev/null",
         "/proc/self/status", "no/such/dir", "C:\\Windows\\x.png", "\\\\server\\share\\x", "*", "**/*", "[",
         "loop/x.png", "scene.yaml/..", "../configs", "a\x00b.png", "x" * 300 + ".png"]
VALUES = [None, True, False, "", "x", "0", "1e3", "true", "nan", "-1", [], [1], [1, 2], [2, 1], [1, 2, 3], [[1, 2]],
          {}, {"a": 1}, {"kind": "nope"}, *NUMBERS[:6]]
KEYS = ["colour", "Count", "üñí", "x" * 300, "", "__class__", "1", "kind ", "null", "🙂"]


def _nodes(doc, path=()):
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _nodes(value, (*path, i))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _describe(path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".") or "(top)"


INTS = [0, 1, -1, 2, 3, 16, 255, 256, 16385, 65536, 2**31, 2**63, 10**9, 10**18, -(10**9)]
FLOATS = [0.0, -0.0, 1e-9, 0.5, 0.999, 1.0, 1.5, -0.5, 100.0, 1e9, 1e308, float("inf"), float("-inf"), float("nan")]


def _same_kind(node, rng):
    """An edge value of the node's own type (a valid-looking value that may break a range): a number
    for a number, a tricky string for a string, the other truth value for a bool."""
    if isinstance(node, bool):
        return not node
    if isinstance(node, int):
        return _pick(rng, INTS)
    if isinstance(node, float):
        return _pick(rng, FLOATS)
    if isinstance(node, str):
        return _pick(rng, [*UNICODE, *LONG, *PATHS, node * 3, node.upper()])
    return _pick(rng, VALUES)


def mutate(doc, rng) -> tuple[Any, str]:
    """One structural mutation of a YAML/JSON document (a deep copy is mutated); returns (doc, what).
    Half of them keep the node's type (edge values that validation must range-check), half not."""
    doc = copy.deepcopy(doc)
    nodes = list(_nodes(doc))
    path, node = _pick(rng, nodes)
    where = _describe(path)
    if rng.random() < 0.5 and not isinstance(node, (dict, list)) and path:
        value = _same_kind(node, rng)
        return _set(doc, path, value), f"{value!r:.40} at {where}"
    op = _pick(rng, ["type", "number", "string", "unicode", "long", "path", "delete", "unknown", "list", "range",
                     "swap", "number", "range", "delete", "unknown"])
    if op == "delete" and path:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc, f"delete {where}"
    if op == "unknown":
        dicts = [(p, n) for p, n in nodes if isinstance(n, dict)]
        if dicts:
            p, n = _pick(rng, dicts)
            key = _pick(rng, KEYS)
            n[key] = _pick(rng, VALUES)
            return doc, f"unknown key {key[:20]!r} in {_describe(p)}"
    if op == "list":
        lists = [(p, n) for p, n in nodes if isinstance(n, list) and n]
        if lists:
            p, n = _pick(rng, lists)
            how = _pick(rng, ["empty", "repeat", "reverse", "nest", "append"])
            new = {"empty": [], "repeat": n * 40, "reverse": n[::-1], "nest": [n],
                   "append": [*n, _pick(rng, VALUES)]}[how]
            return _set(doc, p, new), f"list {how} at {_describe(p)}"
    if op == "range":
        pairs = [(p, n) for p, n in nodes if isinstance(n, list) and len(n) == 2
                 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in n)]
        if pairs:
            p, n = _pick(rng, pairs)
            new = _pick(rng, [[n[1], n[0]], [0, 0], [-1, 1], [10**9, 10**9], [float("nan"), 1], [1, float("inf")],
                              [0, 10**6], [1e-9, 1e-9], [n[0], n[1], n[1]], [-(10**6), -1]])
            return _set(doc, p, new), f"range {new} at {_describe(p)}"
    if op == "swap" and len(nodes) > 2:
        _, other = _pick(rng, nodes[1:])
        return _set(doc, path, copy.deepcopy(other)), f"value from elsewhere at {where}"
    pool = {"type": VALUES, "number": NUMBERS, "string": ["", "x", "yes", "none", "0x10", "1_000"],
            "unicode": UNICODE, "long": LONG, "path": PATHS}.get(op, VALUES)
    value = _pick(rng, pool)
    return _set(doc, path, value), f"{op} {value!r:.40} at {where}"


def text_mutation(data: bytes, rng) -> tuple[bytes, str]:
    """A mutation of a file's bytes: truncated, non-UTF-8, BOM, garbage, deep nesting, YAML tricks."""
    op = _pick(rng, ["truncate", "bytes", "bom", "empty", "garbage", "nest", "tag", "alias", "dupkey", "tabs"])
    if op == "truncate":
        cut = int(rng.integers(0, max(1, len(data))))
        return data[:cut], f"truncated at byte {cut}"
    if op == "bytes":
        at = int(rng.integers(0, max(1, len(data))))
        return data[:at] + b"\xff\xfe\xc3\x28\x80" + data[at:], f"non-UTF-8 bytes at {at}"
    if op == "bom":
        return b"\xef\xbb\xbf" + data, "UTF-8 BOM"
    if op == "empty":
        return b"", "empty file"
    if op == "garbage":
        return data + b"\n}}]]:::\x00", "trailing garbage"
    if op == "nest":
        return b"[" * 100000 + b"]" * 100000, "nested 100,000 deep"
    if op == "tag":
        return b"!!python/object/apply:os.system ['true']\n" + data, "python tag"
    if op == "alias":
        lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for k in range(1, 7):
            lines.append(b"a%d: &a%d [" % (k, k) + b", ".join([b"*a%d" % (k - 1)] * 10) + b"]")
        return b"\n".join(lines) + b"\n" + data, "alias bomb (10^7 nodes)"
    if op == "dupkey":
        return data + b"\nname: dup\nname: dup2\n", "duplicate keys"
    return data.replace(b"  ", b"\t", 3), "tabs for indentation"


# ------------------------------------------------------------------------------- base materials
def _run_ok(argv: list[str]) -> None:
    code, _, err, escaped = call_main(argv, 600)
    if code != 0 or escaped:
        raise SystemExit(f"fuzz set-up failed: vision-synth {' '.join(argv)}: {err}{escaped or ''}")


@dataclass
class Base:
    """Inputs made once per fuzz run: two small datasets (real and mixed), good backgrounds, documents."""

    root: Path
    dataset: Path  # 6 images 48×48 png of the surface_defects scene, flags set real (one image synthetic)
    other: Path  # a second dataset, for merge
    backgrounds: Path  # 2 good photos
    docs: dict[str, list[tuple[str, Any]]]  # family kind → [(name, document)]


def _tiny(config: dict, rng=None) -> dict:
    config = copy.deepcopy(config)
    config["num_images"] = 2
    config["image"] = {**config.get("image", {}), "width": 48, "height": 40}
    config["image"].setdefault("format", "png")
    if isinstance(config.get("augment"), dict):
        config["augment"]["copies"] = 1
    return config


def _dump_yaml(doc) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")


QUALITY = {"fidelity": "off", "labels": {"min_area": 1, "min_side": 1}, "sample_grid": 2,
           "duplicates": {"action": "report"}, "gate": {"max_label_issues": 0, "max_duplicate_fraction": 0.5}}
QUALITY_REJECTS = {"fidelity": "off", "labels": {"min_area": 100000}, "sample_grid": 0}
POLICY_SMALL = {"seed": 0, "target_per_class": 6, "max_synthetic_fraction": 0.5, "eval": {"ratio": 0.3},
                "classes": {"crack": {"source": "copy-paste"},
                            "pit": {"source": "procedural", "defect": {"kind": "pit", "radius": [2, 4]}}}}


def build_base(root: Path) -> Base:
    """Generate the datasets with the product itself (in this process), then set the flags."""
    root.mkdir(parents=True)
    quickstart = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    config = {**quickstart, "num_images": 6, "image": {"width": 48, "height": 48, "format": "png"}}
    (root / "configs").mkdir()
    (root / "configs" / "base.yaml").write_text(yaml.safe_dump(config))
    for name, seed in (("dataset", "0"), ("other", "1")):
        _run_ok(["generate", str(root / "configs" / "base.yaml"), "--out", str(root / "gen" / name), "--seed", seed,
                 "--quiet"])
        data = json.loads((root / "gen" / name / "annotations.json").read_text())
        for record in data["images"] + data["annotations"]:
            record["synthetic"] = record.get("image_id", record["id"]) == 6  # image 6 synthetic, the rest real
        (root / name / "images").mkdir(parents=True)
        for image in data["images"]:
            shutil.copyfile(root / "gen" / name / "images" / image["file_name"], root / name / "images" / image["file_name"])
        (root / name / "annotations.json").write_text(json.dumps(data))
    backgrounds = root / "backgrounds"
    backgrounds.mkdir()
    from vision_synth.imageio import write_image
    from vision_synth.seeding import rng_for

    for k in range(2):
        pixels = (rng_for(0, k).random((60, 70, 3)) * 200).astype(np.uint8)
        write_image(backgrounds / f"good_{k}.png", pixels, "png")

    docs: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for path in sorted((REPO / "configs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        docs["dataset"].append((path.name, _tiny(doc)))
        if path.name in ("quickstart.yaml", "tabletop_objects.yaml", "bench_512.yaml"):  # with more sections
            docs["dataset"].append((f"{path.name}+quality", {**_tiny(doc), "quality": QUALITY}))
            docs["dataset"].append((f"{path.name}+polygon", {**_tiny(doc), "output": {"segmentation": "polygon",
                                                                                     "amodal": True}}))
    for path in sorted((REPO / "scenes").glob("*/scene.yaml")):
        docs["scene"].append((f"scenes/{path.parent.name}", yaml.safe_load(path.read_text())))
    augment = yaml.safe_load((REPO / "configs" / "augment_example.yaml").read_text())["augment"]
    docs["augment spec"].append(("augment_example.yaml augment:", {**augment, "copies": 1}))
    docs["augment spec"].append(("copy-paste only", {"copy_paste": augment["copy_paste"], "copies": 1}))
    for path in sorted((REPO / "configs" / "pipelines").glob("*.yaml")):
        docs["pipeline"].append((f"pipelines/{path.name}", yaml.safe_load(path.read_text())))
    policy = yaml.safe_load((REPO / "configs" / "policies" / "rare_example.yaml").read_text())
    docs["policy"].append(("rare_example.yaml", {**policy, "target_per_class": 6}))
    docs["policy"].append(("rare_example.yaml without learned", POLICY_SMALL))
    for path in sorted((REPO / "configs" / "quality").glob("*.yaml")):
        docs["quality"].append((f"quality/{path.name}", yaml.safe_load(path.read_text())))
    docs["quality"].append(("quality (labels, duplicates)", QUALITY))
    docs["quality"].append(("quality (rejecting)", QUALITY_REJECTS))
    docs["quality"].append(("quality with a reference", {**QUALITY, "reference": "../dataset/annotations.json",
                                                         "gate": {"max_box_size_ks": 1.0}}))
    return Base(root, root / "dataset", root / "other", backgrounds, dict(docs))


def _project(root: Path, base: Base) -> Path:
    """A project folder for a case: configs/ (pipelines linked), scenes/ (the repo's linked), a
    symlink loop, copies of the datasets beside it."""
    project = root / "project"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "pipelines").symlink_to(REPO / "configs" / "pipelines")
    (project / "scenes").mkdir()
    for scene in (REPO / "scenes").iterdir():
        (project / "scenes" / scene.name).symlink_to(scene)
    (project / "configs" / "loop").symlink_to(project / "configs" / "loop")
    shutil.copytree(base.dataset, root / "dataset")
    shutil.copytree(base.other, root / "other")
    shutil.copytree(base.backgrounds, project / "backgrounds")
    return project


def _mutated(doc, rng, what: str, text_rate: float = 0.08) -> tuple[bytes, str]:
    """A document mutated 1-3 times, dumped as YAML, sometimes mutated again as bytes."""
    steps = []
    for _ in range(_pick(rng, [1] * 6 + [2] * 3 + [3])):  # mostly one: most of a config stays valid
        doc, step = mutate(doc, rng)
        steps.append(step)
    data = _dump_yaml(doc)
    if rng.random() < text_rate:
        data, step = text_mutation(data, rng)
        steps.append(step)
    return data, f"{what}: {'; '.join(steps)}"


# ----------------------------------------------------------------------------------- config cases
def _out_state(root: Path, rng, out: Path, argv: list[str]) -> list[str]:
    """Sometimes an output exists already: an earlier dataset (with --overwrite, or without it)."""
    roll = rng.random()
    if roll < 0.15:
        out.mkdir(parents=True)
        (out / "earlier.txt").write_text("an earlier output")
        return [*argv, "--overwrite"] if rng.random() < 0.5 else argv
    return argv


def _affordable(path: Path) -> Callable[[], bool]:
    """Whether a config that validated is small enough to generate in a fuzz run: procedural, tiny
    images, a few samples and instances, no utility training or Inception features (asked after
    validate passed, so loading it is known to be quick)."""

    def affordable() -> bool:
        from vision_synth.config import load_config

        config = load_config(path)
        quality = config.quality
        if quality is not None and (quality.utility.enabled or quality.utility.require or
                                    quality.fidelity.features != "off"):
            return False
        counts = [o.count[1] for o in config.scene.objects] + [d.count[1] for d in config.scene.defects]
        copies = 1 if config.augment is None else config.augment.slots
        return (config.generator == "procedural" and config.image.width * config.image.height <= 96 * 96
                and config.num_images * copies <= 8 and sum(counts) <= 64
                and config.scene.placement.max_tries <= 100)

    return affordable


def _small_work(kind: str, path: Path) -> Callable[[], bool]:
    """Whether an augment spec or rare policy asks for little enough work to run in a fuzz run (a few
    copies and pastes); one that does not load is run, so that the command reports it."""

    def small() -> bool:
        try:
            if kind == "augment spec":
                from vision_synth.augment.spec import load_augment_spec

                spec = load_augment_spec(path)
                return spec.slots <= 8 and (spec.copy_paste is None or spec.copy_paste.count[1] <= 16)
            from vision_synth.rare.policy import load_policy

            policy = load_policy(path)
        except Exception:  # noqa: BLE001 - the command's own run judges it
            return True
        targets = [policy.target_per_class or 0, policy.rare_below or 0,
                   *(c.target or 0 for c in policy.classes.values())]
        return max(targets) <= 64 and (policy.per_image or (1, 1))[1] <= 16 and policy.max_attempts <= 16

    return small


def config_case(index: int, rng, root: Path, base: Base) -> Case:
    project = _project(root, base)
    kind = _pick(rng, ["dataset"] * 5 + ["scene"] * 2 + ["augment spec", "pipeline", "policy", "quality"])
    name, doc = _pick(rng, base.docs[kind])
    cid = f"config-{index}"
    ds = root / "dataset"
    out = root / "out"
    data, what = _mutated(doc, rng, f"{kind} {name}")
    runs: list[Run] = []
    if kind in ("dataset", "scene"):
        config_path = project / "configs" / "fuzz.yaml"
        if kind == "scene":  # a scene file named by the config (a folder of its own, sprites linked)
            scene_dir = project / "scenes" / "fuzzscene"
            scene_dir.mkdir()
            (scene_dir / "sprites").symlink_to(REPO / "scenes" / "tabletop_objects" / "sprites")
            (scene_dir / "scene.yaml").write_bytes(data)
            config = _tiny(yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text()))
            config["scene"] = "fuzzscene"
            config_path.write_bytes(_dump_yaml(config))
        else:
            config_path.write_bytes(data)
        runs.append(Run("validate", ["validate", str(config_path)]))
        generate = ["generate", str(config_path), "--out", str(out), "--quiet"]
        runs.append(Run("generate", _out_state(root, rng, out, generate), out, [ds], out / "annotations.json",
                        only_if=_affordable(config_path)))
    elif kind in ("augment spec", "pipeline"):
        path = project / "configs" / ("spec.yaml" if kind == "augment spec" else "pipeline.yaml")
        path.write_bytes(data)
        flag = "--spec" if kind == "augment spec" else "--pipeline"
        argv = ["augment", "--coco", str(ds / "annotations.json"), "--images", str(ds / "images"), flag, str(path),
                "--out", str(out), "--format", "png", "--quiet"]
        runs.append(Run("augment", _out_state(root, rng, out, argv), out, [ds], out / "annotations.json",
                        only_if=_small_work(kind, path) if kind == "augment spec" else None))
    elif kind == "policy":
        path = project / "configs" / "policy.yaml"
        path.write_bytes(data)
        argv = ["augment-rare", "--coco", str(ds / "annotations.json"), "--images", str(ds / "images"),
                "--config", str(path), "--out", str(out), "--quiet"]
        runs.append(Run("augment-rare", _out_state(root, rng, out, argv), out, [ds], out / "annotations.json",
                        only_if=_small_work(kind, path)))
    else:  # quality
        path = project / "configs" / "quality.yaml"
        path.write_bytes(data)
        argv = ["check", str(ds), "--config", str(path), "--quiet"]
        if rng.random() < 0.3:
            argv += _pick(rng, [["--fidelity", "off"], ["--remove-duplicates"], ["--seeds", "0,x"], ["--steps", "3"],
                                ["--device", "cpu"], ["--reference", str(root / "other" / "annotations.json")]])
        runs.append(Run("check", argv, None, [root / "other"]))
    return Case(cid, what, root, runs)


# ------------------------------------------------------------------------------------- COCO cases
def coco_mutation(data: dict, rng) -> tuple[Any, str]:
    """One COCO-aware mutation: a record's field made wrong in a way real exports get wrong."""
    data = copy.deepcopy(data)
    records = {key: [r for r in data[key] if isinstance(r, dict)] for key in ("images", "annotations", "categories")}
    if not all(records.values()):  # an earlier mutation left no records of a kind: mutate anything
        return mutate(data, rng)
    images, anns, cats = records["images"], records["annotations"], records["categories"]
    ann = _pick(rng, anns)
    img = _pick(rng, images)
    # the image's size for the RLE and box mutations below (48 when an earlier mutation broke it)
    w, h = (v if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**6 else 48
            for v in (img.get("width"), img.get("height")))
    op = _pick(rng, ["missing", "wrong type", "dup id", "zero id", "rle", "rle", "polygon", "polygon", "bbox",
                     "bbox", "size", "file_name", "category", "iscrowd", "area", "top", "image_id", "info"])
    if op == "missing":
        record = _pick(rng, [r for r in (ann, img, _pick(rng, cats)) if r is not None])
        key = _pick(rng, sorted(record))
        del record[key]
        return data, f"missing {key!r} in a record"
    if op == "wrong type":
        record = _pick(rng, [r for r in (ann, img, _pick(rng, cats)) if r is not None])
        key = _pick(rng, sorted(record))
        record[key] = _pick(rng, VALUES)
        return data, f"{key} = {record[key]!r:.30}"
    if op == "dup id" and ann is not None:
        group = _pick(rng, [anns, images, cats])
        if len(group) > 1:
            group[1]["id"] = group[0]["id"]
            return data, "duplicate id"
    if op == "zero id":
        record = _pick(rng, [r for r in (ann, img, _pick(rng, cats)) if r is not None])
        record["id"] = _pick(rng, [0, -1, 2**63, 1.5, True])
        return data, f"id {record['id']!r}"
    if op == "rle" and ann is not None:
        seg = _pick(rng, [{"size": [h, w], "counts": "!!!!"}, {"size": [h, w], "counts": ""},
                          {"size": [h, w], "counts": "0" * 5000}, {"size": [h + 1, w], "counts": "PP1"},
                          {"size": [h, w], "counts": [h * w + 5]}, {"size": [h, w], "counts": [-3, h * w + 3]},
                          {"size": [h, w], "counts": [0.5, h * w - 0.5]}, {"size": ["h", "w"], "counts": "a"},
                          {"size": [h, w], "counts": None}, {"size": [h, w]}, {"counts": "ab"},
                          {"size": [h, w], "counts": [0, h * w]}, {"size": [10**9, 10**9], "counts": "a"},
                          {"size": [h, w], "counts": "é" * 10}, {"size": [h, w], "counts": [h * w]}])
        ann["segmentation"] = seg
        return data, f"RLE {str(seg)[:60]}"
    if op == "polygon" and ann is not None:
        seg = _pick(rng, [[[1, 2, 3, 4]], [[1, 2, 3, 4, 5]], [[]], [], [[1, 2, 3, 4, 5, 6, 7]], [["a"] * 6],
                          [[float("nan")] * 6], [[1e30, 1, 2, 1e30, 5, 6]], [[-50, -50, -40, -50, -40, -40]],
                          [[1000, 1000, 1010, 1000, 1010, 1010]], [1, 2, 3, 4, 5, 6], [[[1, 2], [3, 4], [5, 6]]],
                          [[2, 2, 2, 2, 2, 2]], "polygon", 7])
        ann["segmentation"] = seg
        return data, f"polygon {str(seg)[:60]}"
    if op == "bbox" and ann is not None:
        box = _pick(rng, [[w + 5, 0, 10, 10], [-20, -20, 5, 5], [0, 0, -3, 4], [0, 0, 0, 0], [float("nan")] * 4,
                          [0, 0, float("inf"), 1], [1, 2, 3], ["1", 2, 3, 4], [1e308, 1e308, 1e308, 1e308],
                          [0, 0, w * 3, h * 3], None, {"x": 1}])
        ann["bbox"] = box
        if rng.random() < 0.5:
            ann.pop("segmentation", None)
        return data, f"bbox {box} (segmentation {'kept' if 'segmentation' in ann else 'removed'})"
    if op == "size":
        key = _pick(rng, ["width", "height"])
        img[key] = _pick(rng, [0, -5, 1, 10**9, 10**30, 48.5, "48", 2**31, 100000])
        return data, f"image {key} = {img[key]!r}"
    if op == "file_name":
        img["file_name"] = _pick(rng, [*PATHS, "images/../../x.png", "missing.png", "ü名.png", "000000001.PNG",
                                       "dir", 5, None])
        return data, f"file_name {img['file_name']!r:.40}"
    if op == "category":
        what = _pick(rng, ["empty", "dup name", "zero", "name type", "unknown ref"])
        if what == "empty":
            data["categories"] = []
        elif what == "dup name" and len(cats) > 1:
            cats[1]["name"] = cats[0]["name"]
        elif what == "zero":
            cats[0]["id"] = 0
        elif what == "name type":
            cats[0]["name"] = _pick(rng, [5, None, "", "x" * 300, "名/..", ["a"]])
        elif ann is not None:
            ann["category_id"] = _pick(rng, [999, None, "1", 1.0, -1])
        return data, f"categories: {what}"
    if op == "iscrowd" and ann is not None:
        ann["iscrowd"] = _pick(rng, [1, 2, "yes", None, True, -1])
        return data, f"iscrowd {ann['iscrowd']!r}"
    if op == "area" and ann is not None:
        ann["area"] = _pick(rng, [-5, 0, "big", None, float("nan"), 10**30])
        return data, f"area {ann['area']!r}"
    if op == "image_id" and ann is not None:
        ann["image_id"] = _pick(rng, [999, None, "1", 1.0, -1, 0])
        return data, f"image_id {ann['image_id']!r}"
    if op == "info":
        data["info"] = _pick(rng, ["a string", 5, [], None, {"description": "ü" * 1000}])
        return data, f"info {data['info']!r:.30}"
    key = _pick(rng, ["images", "annotations", "categories", "licenses"])
    data[key] = _pick(rng, [None, {}, "x", [None], [[]], [1]])
    return data, f"{key} = {data[key]!r}"


def _dataset_runs(rng, root: Path, ds: Path, picks: int) -> list[Run]:
    """`picks` of the commands that read a dataset folder, on `ds` (each into an output of its own)."""
    ann, images = ds / "annotations.json", ds / "images"
    out = root / "out"
    choices = {
        "augment": lambda: Run("augment", ["augment", "--coco", str(ann), "--images", str(images), "--out", str(out),
                                           "--format", "png", "--quiet", *_pick(rng, [
                                               ["--copy-paste"], ["--pipeline", str(REPO / "configs" / "pipelines"
                                                                                    / "geometric_color.yaml")],
                                               ["--copy-paste", "--pipeline", str(REPO / "configs" / "pipelines"
                                                                                  / "crop_zoom.yaml"), "--copies", "2"]])],
                               out, [ds], out / "annotations.json"),
        "augment-rare": lambda: Run("augment-rare", ["augment-rare", "--coco", str(ann), "--images", str(images),
                                                     "--out", str(out), "--config", str(root / "policy.yaml"),
                                                     "--quiet"], out, [ds], out / "annotations.json"),
        "check": lambda: Run("check", ["check", str(ds), "--config", str(root / "quality.yaml"), "--quiet"],
                             None, [ds]),
        "split": lambda: Run("split", ["split", str(ds), "--ratios", _pick(rng, ["0.5,0.5", "0.4,0.3,0.3"]),
                                       "--seed", "1", "--quiet",
                                       *_pick(rng, [[], ["--by-class"], ["--allow-synthetic-eval"]])], None, [ds]),
        "merge": lambda: Run("merge", ["merge", str(ds), str(root / "other"), "--out", str(out), "--quiet"],
                             out, [ds], out / "annotations.json"),
        "export": lambda: Run("export", ["export", str(ds), "--out", str(out), "--quiet", *_pick(rng, [
            ["--format", "yolo"], ["--format", "yolo-seg"], ["--format", "coco"],
            ["--format", "coco", "--segmentation", "rle-uncompressed"], ["--format", "yolo-seg", "--polygons",
                                                                         "largest"]])], out, [ds]),
        "preview": lambda: Run("preview", ["preview", str(ds), "--out", str(root / "grid.png"), "--quiet"],
                               root / "grid.png", [ds]),
    }
    names = list(choices)
    chosen = [names[int(i)] for i in rng.choice(len(names), size=picks, replace=False)]
    runs = []
    for k, name in enumerate(chosen):
        run = choices[name]()
        if run.out == out:  # its own output folder
            own = root / f"out-{k}"
            run.argv = [str(own) if a == str(out) else a for a in run.argv]
            run.out, run.writes = own, (own / "annotations.json" if run.writes else None)
            run.argv = _out_state(root, rng, own, run.argv)
        runs.append(run)
    return runs


def _case_inputs(root: Path) -> None:
    (root / "policy.yaml").write_bytes(_dump_yaml(POLICY_SMALL))
    (root / "quality.yaml").write_bytes(_dump_yaml(QUALITY))


def coco_case(index: int, rng, root: Path, base: Base) -> Case:
    _project(root, base)
    _case_inputs(root)
    ds = root / "dataset"
    data = json.loads((ds / "annotations.json").read_text())
    steps = []
    for _ in range(_pick(rng, [1] * 6 + [2] * 3 + [3])):
        if rng.random() < 0.7:
            data, step = coco_mutation(data, rng)
        else:
            data, step = mutate(data, rng)
        steps.append(step)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) and data[k]
                                                 for k in ("images", "annotations", "categories")):
            break  # the next mutation needs lists of records
    text = json.dumps(data, ensure_ascii=bool(rng.random() < 0.5)).encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        text, step = text_mutation(text, rng)
        steps.append(step)
    (ds / "annotations.json").write_bytes(text)
    runs = _dataset_runs(rng, root, ds, int(rng.integers(1, 3)))
    return Case(f"coco-{index}", f"COCO: {'; '.join(steps)}", root, runs)


# ------------------------------------------------------------------------------------ image cases
def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height but holds one tiny IDAT: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def _save(image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def broken_image(kind: str, rng) -> tuple[bytes | None, str, tuple[int, int] | None]:
    """(file bytes or None for a non-file, file suffix, (width, height) as a viewer shows it or None when
    it cannot be read)."""
    from PIL import Image

    h, w = int(rng.integers(24, 64)), int(rng.integers(24, 64))
    rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    good_png = _save(Image.fromarray(rgb), "PNG")
    good_jpg = _save(Image.fromarray(rgb), "JPEG", quality=90)
    if kind == "empty":
        return b"", ".png", None
    if kind == "truncated png":
        return good_png[: int(rng.integers(8, len(good_png) - 12))], ".png", None
    if kind == "truncated jpeg":
        return good_jpg[: int(rng.integers(2, len(good_jpg) - 2))], ".jpg", None
    if kind == "random bytes":
        return rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes(), ".jpg", None
    if kind == "text":
        return b"this is not an image\n", ".png", None
    if kind == "bad crc":
        data = bytearray(good_png)
        data[29] ^= 0xFF  # inside IHDR's CRC
        return bytes(data), ".png", None
    if kind == "bomb png":
        side = int(_pick(rng, [100000, 65535, 30000]))
        return _png_header_only(side, side), ".png", None
    if kind == "bomb png (warning size)":  # between Pillow's warning and its error: 9,500² ≈ 90 M pixels
        return _png_header_only(9500, 9500), ".png", None
    if kind == "bomb gif":
        return (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"," + struct.pack("<HHHH", 0, 0, 1, 1)
                + b"\x00\x02\x02\x44\x01\x00;"), ".gif", None
    if kind == "16-bit grey":
        return _save(Image.fromarray((rng.random((h, w)) * 65535).astype(np.uint16)), "PNG"), ".png", (w, h)
    if kind == "16-bit rgb":
        import cv2

        ok, buf = cv2.imencode(".png", (rng.random((h, w, 3)) * 65535).astype(np.uint16))
        return buf.tobytes(), ".png", (w, h)
    if kind == "32-bit int tiff":
        return _save(Image.fromarray((rng.random((h, w)) * 2**31).astype(np.int32)), "TIFF"), ".tif", (w, h)
    if kind == "float tiff":
        return _save(Image.fromarray(rng.random((h, w)).astype(np.float32)), "TIFF"), ".tif", (w, h)
    if kind == "cmyk jpeg":
        return _save(Image.fromarray(rgb).convert("CMYK"), "JPEG"), ".jpg", (w, h)
    if kind == "palette png":
        image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        return _save(image, "PNG", transparency=0), ".png", (w, h)
    if kind == "la png":
        return _save(Image.fromarray(rgb).convert("LA"), "PNG"), ".png", (w, h)
    if kind == "rgba png":
        return _save(Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "PNG"), ".png", (w, h)
    if kind == "1-bit png":
        return _save(Image.fromarray(rgb).convert("1"), "PNG"), ".png", (w, h)
    if kind == "exif rotated jpeg":
        orientation = int(_pick(rng, [3, 5, 6, 8]))
        exif = Image.Exif()
        exif[0x0112] = orientation
        size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        return _save(Image.fromarray(rgb), "JPEG", exif=exif.tobytes()), ".jpg", size
    if kind == "animated gif":
        frames = [Image.fromarray(np.roll(rgb, k, axis=1)).convert("P") for k in range(3)]
        return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0), ".gif", (w, h)
    if kind == "apng":
        frames = [Image.fromarray(np.roll(rgb, k, axis=0)) for k in range(3)]
        return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50), ".png", (w, h)
    if kind == "multi-page tiff":
        frames = [Image.fromarray(np.roll(rgb, k, axis=0)) for k in range(2)]
        return _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]), ".tiff", (w, h)
    if kind == "1x1":
        return _save(Image.fromarray(rgb[:1, :1]), "PNG"), ".png", (1, 1)
    if kind == "thin strip":
        return _save(Image.fromarray(np.zeros((1, 3000, 3), np.uint8)), "PNG"), ".png", (3000, 1)
    if kind == "webp":
        return _save(Image.fromarray(rgb), "WEBP"), ".webp", (w, h)
    if kind == "bmp":
        return _save(Image.fromarray(rgb), "BMP"), ".bmp", (w, h)
    if kind == "grey jpeg":
        return _save(Image.fromarray(rgb[..., 0]), "JPEG"), ".jpg", (w, h)
    if kind == "progressive jpeg":
        return _save(Image.fromarray(rgb), "JPEG", progressive=True), ".jpg", (w, h)
    if kind == "png named jpg":
        return good_png, ".jpg", (w, h)
    if kind == "corrupt jpeg middle":
        data = bytearray(good_jpg)
        for k in range(len(data) // 2, len(data) // 2 + 40):
            data[k] = 0xFF
        return bytes(data), ".jpg", None
    return None, ".png", None  # a directory, a dangling symlink or a symlink to /dev/null (made by the caller)


IMAGE_KINDS = ["empty", "truncated png", "truncated jpeg", "random bytes", "text", "bad crc", "bomb png",
               "bomb png (warning size)", "bomb gif", "16-bit grey", "16-bit rgb", "32-bit int tiff", "float tiff",
               "cmyk jpeg", "palette png", "la png", "rgba png", "1-bit png", "exif rotated jpeg", "animated gif",
               "apng", "multi-page tiff", "1x1", "thin strip", "webp", "bmp", "grey jpeg", "progressive jpeg",
               "png named jpg", "corrupt jpeg middle", "directory", "dangling symlink", "symlink to /dev/null"]


def _place_image(kind: str, rng, path: Path) -> tuple[Path, tuple[int, int] | None]:
    data, suffix, size = broken_image(kind, rng)
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        path.mkdir()
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "no_such_image.png")
    elif kind == "symlink to /dev/null":
        path.symlink_to("/dev/null")
    else:
        path.write_bytes(data)
    return path, size


def image_case(index: int, rng, root: Path, base: Base) -> Case:
    project = _project(root, base)
    _case_inputs(root)
    kind = IMAGE_KINDS[index % len(IMAGE_KINDS)]
    use = _pick(rng, ["dataset image", "dataset image", "background", "region mask", "sprite"])
    out = root / "out"
    runs: list[Run] = []
    if use == "dataset image":
        ds = root / "dataset"
        data = json.loads((ds / "annotations.json").read_text())
        record = _pick(rng, data["images"])
        (ds / "images" / record["file_name"]).unlink()
        path, size = _place_image(kind, rng, ds / "images" / record["file_name"])
        record["file_name"] = path.name
        if size is not None and rng.random() < 0.7:  # a record that agrees with the file (as a viewer shows it)
            record["width"], record["height"] = size
            for ann in data["annotations"]:
                if ann["image_id"] == record["id"]:
                    ann["segmentation"], ann["bbox"] = _box_rle(size), [0, 0, 1, 1]
                    ann["area"] = 1
        (ds / "annotations.json").write_text(json.dumps(data))
        runs = _dataset_runs(rng, root, ds, 2)
    else:
        config = _tiny(yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text()))
        scene = yaml.safe_load((REPO / "scenes" / "surface_defects" / "scene.yaml").read_text())
        if use == "background":
            folder = project / "bg"
            shutil.copytree(base.backgrounds, folder)
            _place_image(kind, rng, folder / "broken")
            scene["background"] = {"kind": "images", "images": "../bg"}
        elif use == "region mask":
            path, _ = _place_image(kind, rng, project / "masks" / "region")
            scene["region"] = f"../masks/{path.name}"
        else:
            folder = project / "sprites"
            shutil.copytree(REPO / "scenes" / "tabletop_objects" / "sprites" / "ball", folder)
            _place_image(kind, rng, folder / "broken")
            scene["objects"] = [{"category": "ball", "source": {"kind": "sprites", "path": "../sprites"},
                                 "count": [1, 2], "scale": [0.2, 0.4]}]
        config["scene"] = scene
        path = project / "configs" / "fuzz.yaml"
        path.write_bytes(_dump_yaml(config))
        runs = [Run("validate", ["validate", str(path)]),
                Run("generate", ["generate", str(path), "--out", str(out), "--quiet"], out, [root / "dataset"],
                    out / "annotations.json")]
    return Case(f"image-{index}", f"image {kind!r} as {use}", root, runs)


def _box_rle(size: tuple[int, int]) -> dict:
    """The compressed RLE of the top-left pixel of a width×height image."""
    from pycocotools import mask as coco_mask

    w, h = size
    mask = np.zeros((h, w), np.uint8, order="F")
    mask[0, 0] = 1
    rle = coco_mask.encode(mask)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


BUILDERS: dict[str, Callable] = {"config": config_case, "coco": coco_case, "image": image_case}


# --------------------------------------------------------------------------------------- driving
@dataclass
class FuzzReport:
    seed: int
    cases: Counter = field(default_factory=Counter)  # family → cases
    outcomes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # entry → outcome → runs
    failures: list[Result] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    subprocess_runs: int = 0
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.outcomes[result.entry][result.outcome] += 1
        self.results.append(result)
        if result.outcome == "FAIL":
            self.failures.append(result)

    def lines(self) -> list[str]:
        total = sum(sum(c.values()) for c in self.outcomes.values())
        out = [f"fuzz seed {self.seed}: {sum(self.cases.values())} cases "
               f"({', '.join(f'{n} {f}' for f, n in self.cases.items())}), {total} runs in process, "
               f"{self.subprocess_runs} through a subprocess, {self.seconds:.0f} s",
               f"{'entry point':<14}{'runs':>7}{'ok (0)':>9}{'error (2)':>11}{'rejected (3)':>14}{'FAIL':>7}"
               f"{'too large, skipped':>20}"]
        for entry in ENTRY_POINTS:
            c = self.outcomes.get(entry, Counter())
            out.append(f"{entry:<14}{sum(c.values()) - c['skipped']:>7}{c['ok']:>9}{c['error']:>11}{c['rejected']:>14}"
                       f"{c['FAIL']:>7}{c['skipped']:>20}")
        return out


def case_rng(seed: int, family: str, index: int):
    from vision_synth.seeding import rng_for

    return rng_for(seed, index, FAMILIES[family])


def make_case(seed: int, case_id: str, work: Path, base: Base, suffix: str = "") -> Case:
    family, index = case_id.rsplit("-", 1)
    root = work / f"{case_id}{suffix}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return BUILDERS[family](int(index), case_rng(seed, family, int(index)), root, base)


@contextlib.contextmanager
def fuzz_process(memory_gib: float = 3.0):
    """This process set up for fuzzing: offline, one thread for OpenCV and torch, the case folder as the
    working directory, and an address-space cap `memory_gib` above today's (a case that would take
    the machine's memory gets MemoryError instead, which the fuzz reports as the traceback it is)."""
    import cv2
    import torch

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    threads = (cv2.getNumThreads(), torch.get_num_threads())
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    cap = size + int(memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    cwd = os.getcwd()
    try:
        yield
    finally:
        os.chdir(cwd)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _affordable_run(run: Run) -> bool:
    """`run.only_if()`, and True when the question itself fails (the run then shows what is wrong)."""
    try:
        return bool(run.only_if())
    except Exception:  # noqa: BLE001
        return True


def run_case(case: Case, report: FuzzReport, timeout: float, twin: Case | None = None, verbose: bool = False) -> None:
    """Run (and judge) the case's commands in order, in its project folder; `twin`: a fresh copy of
    the case's input for the first run through a subprocess."""
    os.chdir(case.root / "project")
    succeeded = True
    for k, run in enumerate(case.runs):
        if run.only_if is not None:
            if not succeeded:  # (validate refused the config: there is nothing to generate)
                continue
            if not _affordable_run(run):
                report.add(Result(case.id, run.entry, "skipped", "", run.argv))
                continue
        if verbose:
            print(f"$ vision-synth {' '.join(run.argv)}")
            code, out, err, escaped = call_main(run.argv, timeout)
            print(out + err + (escaped or "") + f"(exit {code})")
            succeeded = succeeded and code == 0
            continue
        result = judge(run, case, timeout)
        report.add(result)
        succeeded = succeeded and result.outcome == "ok"
        if twin is not None and k == 0 and result.outcome != "FAIL":
            report.subprocess_runs += 1
            failed = judge_subprocess(run, case, twin, result, timeout)
            if failed is not None:
                report.add(failed)


def run_cases(seed: int, lines: list[str], timeout: float, results: Path) -> None:
    """The worker: run the cases `lines` ("ID" or "ID twin") in this process, appending to `results` one
    JSON line as each case starts and one per judged run, so that the parent knows which case a
    crash (a signal that ends the process) hit."""
    with tempfile.TemporaryDirectory(prefix="vs_fuzz_") as tmp, fuzz_process(), open(results, "a") as log:
        tmp = Path(tmp)
        base = build_base(tmp / "base")
        for line in lines:
            case_id, *flags = line.split()
            log.write(json.dumps({"start": case_id}) + "\n")
            log.flush()
            case = make_case(seed, case_id, tmp, base)
            twin = make_case(seed, case_id, tmp, base, "-twin") if "twin" in flags else None
            report = FuzzReport(seed)
            run_case(case, report, timeout, twin)
            for result in report.results:
                log.write(json.dumps({"result": dataclasses.asdict(result)}) + "\n")
                if result.outcome == "FAIL":
                    print(f"FAIL {result.case} [{result.entry}] {case.what}\n  {result.detail}\n  replay: "
                          f"python tools/fuzz.py --seed {seed} --case {result.case}", file=sys.stderr, flush=True)
            log.write(json.dumps({"end": case_id, "what": case.what, "subprocess": report.subprocess_runs}) + "\n")
            log.flush()
            os.chdir(tmp)
            shutil.rmtree(case.root, ignore_errors=True)
            if twin is not None:
                shutil.rmtree(twin.root, ignore_errors=True)


def worker_command(cases: Path, results: Path, seed: int, timeout: float) -> list[str]:
    """The command line of a worker process (faulthandler on: a crash prints where it happened)."""
    return [sys.executable, "-X", "faulthandler", __file__, "--worker", str(cases), "--results", str(results),
            "--seed", str(seed), "--timeout", str(timeout)]


def run_fuzz(seed: int = 0, counts: dict[str, int] | None = None, subprocess_every: int = 100,
             timeout: float = 60.0, progress: bool = True) -> FuzzReport:
    """Run counts[family] cases of each family with `seed` in worker processes (a crash of one, a
    signal such as SIGSEGV, fails its case and a new worker carries on with the next); every
    `subprocess_every`-th case also through a subprocess. Returns the report."""
    counts = dict(FULL if counts is None else counts)
    ids = [f"{family}-{i}" for family, total in counts.items() for i in range(total)]
    lines = [f"{cid} twin" if subprocess_every and n % subprocess_every == 0 else cid for n, cid in enumerate(ids)]
    report = FuzzReport(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vs_fuzz_run_") as tmp:
        results = Path(tmp) / "results.jsonl"
        todo = lines
        while todo:
            (Path(tmp) / "cases.txt").write_text("\n".join(todo) + "\n")
            proc = subprocess.Popen(worker_command(Path(tmp) / "cases.txt", results, seed, timeout),
                                    stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])})
            tail: list[str] = []
            for line in proc.stderr:
                tail = (tail + [line])[-40:]
                if line.startswith(("FAIL", "  ")) or progress:
                    print(line, end="", file=sys.stderr, flush=True)
            proc.wait()
            done, crashed = _read_results(results, report, progress, started)
            todo = todo[todo.index(next(t for t in todo if t.split()[0] == crashed)) + 1:] if crashed else []
            if crashed:
                report.cases[crashed.rsplit("-", 1)[0]] += 1
                report.add(Result(crashed, "(process)", "FAIL", f"the fuzz worker died (exit {proc.returncode}) in "
                                  f"this case:\n{''.join(tail)}"))
                print(f"FAIL {crashed}: the worker died (exit {proc.returncode}); replay: python tools/fuzz.py "
                      f"--seed {seed} --case {crashed}", file=sys.stderr, flush=True)
            elif proc.returncode != 0:
                raise SystemExit(f"fuzz worker failed (exit {proc.returncode}):\n{''.join(tail)}")
            results.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - started
    return report


def _read_results(results: Path, report: FuzzReport, progress: bool, started: float) -> tuple[int, str | None]:
    """Add a worker's results to the report; (cases finished, the id of a case started but not ended)."""
    open_case, done = None, 0
    if not results.exists():
        return 0, None
    for line in results.read_text().splitlines():
        entry = json.loads(line)
        if "start" in entry:
            open_case = entry["start"]
        elif "result" in entry:
            report.add(Result(**entry["result"]))
        else:
            report.cases[entry["end"].rsplit("-", 1)[0]] += 1
            report.subprocess_runs += entry["subprocess"]
            open_case = None
            done += 1
    return done, open_case


def replay(seed: int, case_id: str, timeout: float, keep: Path | None) -> int:
    """Build one case, print what it is, run each command showing its output, then judge it."""
    work = Path(tempfile.mkdtemp(prefix="vs_fuzz_case_", dir=keep))
    with fuzz_process():
        base = build_base(work / "base")
        case = make_case(seed, case_id, work, base)
        print(f"{case.id}: {case.what}")
        run_case(case, FuzzReport(seed), timeout, verbose=True)
        case = make_case(seed, case_id, work, base)  # fresh input, judged
        report = FuzzReport(seed)
        run_case(case, report, timeout)
    for failure in report.failures:
        print(f"FAIL [{failure.entry}] {failure.detail}")
    print("no failure" if not report.failures else f"{len(report.failures)} failure(s)")
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"inputs kept in {work}")
    return 1 if report.failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", type=int, default=FULL["config"], help="mutated configs")
    parser.add_argument("--coco", type=int, default=FULL["coco"], help="mutated COCO files")
    parser.add_argument("--images", type=int, default=FULL["image"], help="broken images")
    parser.add_argument("--subprocess-every", type=int, default=100,
                        help="every N-th case also through `python -m vision_synth` (0: none)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take")
    parser.add_argument("--case", help="replay one case (e.g. coco-17) with --seed, showing each command's output")
    parser.add_argument("--keep", type=Path, help="with --case: keep its inputs under this folder")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # file of case lines (run_fuzz)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_cases(args.seed, args.worker.read_text().split("\n")[:-1], args.timeout, args.results)
        return 0
    if args.case:
        return replay(args.seed, args.case, args.timeout, args.keep)
    report = run_fuzz(args.seed, {"config": args.configs, "coco": args.coco, "image": args.images},
                      args.subprocess_every, args.timeout)
    for line in report.lines():
        print(line)
    print(f"{len(report.failures)} failure(s)")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
