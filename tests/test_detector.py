import importlib.util
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from helpers import REPO, synthetic_samples, write_coco_dataset
from vision_synth.detector import (MODELS, TrainConfig, TrainedDetector, build_model,
                                   evaluate_detector, load_detector, load_weights, predict, save_detector,
                                   train_detector)
from vision_synth.coco.reader import load_coco
from vision_synth.errors import VisionSynthError

TINY = dict(steps=2, batch_size=2, image_size=64, crop_size=64)


def test_training_runs_is_seeded_and_reports_finite_metrics(coco_dataset):
    ann, images, _ = coco_dataset
    rng_before = torch.random.get_rng_state()
    first = train_detector(ann, images, progress=False, **TINY)
    second = train_detector(ann, images, TrainConfig(**TINY), progress=False)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    assert len(first.losses) == 2 and all(math.isfinite(v) for v in first.losses)
    assert first.losses == second.losses
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    assert [c["name"] for c in first.categories] == ["class1", "class2", "class3"]

    metrics = evaluate_detector(first, ann, images)
    assert 0.0 <= metrics.ap <= 1.0 and 0.0 <= metrics.ap50 <= 1.0
    assert set(metrics.per_class) == {"class1", "class2", "class3"}
    assert all(0.0 <= v <= 1.0 for v in metrics.per_class.values())
    assert metrics.lines()[0].startswith("AP ")


class Oracle(nn.Module):
    """Answers each image with given detections, in dataset order."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = iter(outputs)
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        return [next(self.outputs) for _ in images]


def test_evaluation_matches_categories_by_name(tmp_path):
    # the detector knows class1..3 as labels 1..3; the val set calls them 9, 7, 4 and adds a class
    samples = synthetic_samples(n_images=4, categories=(9, 7, 4, 5))
    ann, images = write_coco_dataset(tmp_path / "val", samples,
                                     category_names={9: "class1", 7: "class2", 4: "class3", 5: "unknown"})
    label = {9: 1, 7: 2, 4: 3}
    outputs = []
    for s in samples:
        known = [k for k, c in enumerate(s.instances.category_ids) if c in label]
        boxes = torch.tensor(s.instances.boxes[known], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        outputs.append({"boxes": boxes, "labels": torch.tensor([label[s.instances.category_ids[k]] for k in known]),
                        "scores": torch.ones(len(known))})
    categories = [{"id": k, "name": f"class{k}"} for k in (1, 2, 3)]
    metrics = evaluate_detector(TrainedDetector(Oracle(outputs), categories, TrainConfig()), ann, images)
    has_unknown = any(5 in s.instances.category_ids for s in samples)
    assert {k: metrics.per_class[k] for k in ("class1", "class2", "class3")} == {"class1": 1.0, "class2": 1.0,
                                                                               "class3": 1.0}
    assert metrics.per_class.get("unknown", 0.0) == 0.0 and has_unknown
    assert metrics.ap == pytest.approx(0.75) and metrics.detections == sum(len(o["labels"]) for o in outputs)


@pytest.mark.slow  # builds and trains every detector architecture (~30 s)
def test_every_model_builds_and_trains_without_downloading(monkeypatch):
    import torchvision

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_download)
    images = [torch.rand(3, 64, 80), torch.rand(3, 64, 80)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}]  # an unlabelled image
    for name in MODELS:
        torch.manual_seed(0)
        model = build_model(name, num_classes=3, image_size=64).train()
        with torch.no_grad():  # the loss path takes our targets; backward is exercised by fcos_small elsewhere
            losses = model(images, targets)
            assert all(torch.isfinite(v) for v in losses.values()), name
            out = model.eval()(images[:1])
        assert set(out[0]) >= {"boxes", "labels", "scores"}, name


@pytest.mark.slow  # a second training run (~18 s)
def test_weights_come_from_a_local_file(tmp_path, coco_dataset):
    ann, images, _ = coco_dataset
    trained = train_detector(ann, images, progress=False, steps=1, batch_size=2, crop_size=64)
    saved = tmp_path / "det.pth"
    save_detector(trained, saved)

    loaded = load_detector(saved, device="cpu")
    dataset = load_coco(ann, images)
    assert predict(loaded, dataset) == predict(trained, dataset)

    resumed = train_detector(ann, images, progress=False, steps=1, batch_size=2, crop_size=64, weights=saved)
    assert resumed.weights_loaded == len(trained.model.state_dict())
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(VisionSynthError, match="no tensor matches"):
        load_weights(trained.model, tmp_path / "other.pth")
    with pytest.raises(VisionSynthError, match="weights file not found"):
        load_weights(trained.model, tmp_path / "missing.pth")


@pytest.mark.slow  # the training script end to end (~45 s)
def test_training_script_prints_ap(coco_dataset):
    ann, images, _ = coco_dataset
    run = subprocess.run([sys.executable, str(REPO / "tools" / "train_detector.py"), "--train", str(ann), "--val",
                          str(ann), "--steps", "2", "--batch-size", "2", "--crop-size", "64", "--device", "cpu",
                          "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("trained fcos_compact for 2 steps")
    ap_line = next(line for line in lines if line.startswith("AP "))
    assert 0.0 <= float(ap_line.split()[1]) <= 1.0
    assert any(line.strip().startswith("class1") for line in lines)


def load_script():
    spec = importlib.util.spec_from_file_location("train_detector_script", REPO / "tools" / "train_detector.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case, message", [
    ("missing", "file not found"),
    ("steps", "--steps: Input should be greater than or equal to 1"),
])
def test_training_script_bad_input_exits_2_with_one_line(tmp_path, coco_dataset, capsys, case, message):
    ann = coco_dataset[0]
    argv = {"missing": ["--train", str(tmp_path / "nope.json"), "--val", str(ann)],
            "steps": ["--train", str(ann), "--val", str(ann), "--steps", "0"]}[case]
    assert load_script().main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def _batches(ann, images, extra=None, **config):
    from vision_synth.detector import _Batches, _Pool

    names = {c["name"]: k + 1 for k, c in enumerate(load_coco(ann, images).categories)}
    pool = lambda a, i: _Pool.of(load_coco(a, i), names)  # noqa: E731
    return _Batches(TrainConfig(**config), pool(ann, images), pool(*extra) if extra else None)


def _one_square_per_image(n: int, size: tuple[int, int] = (80, 96)):
    import numpy as np

    from vision_synth.seeding import rng_for
    from vision_synth.types import Instances, Provenance, Sample

    out = []
    for i in range(n):
        rng = rng_for(0, i)
        mask = np.zeros(size, bool)
        y, x = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 24))
        mask[y : y + int(rng.integers(8, 20)), x : x + int(rng.integers(8, 24))] = True
        image = np.where(mask[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
        out.append(Sample(i, 0, image, Instances(mask[None], [1]), Provenance("test", synthetic=False)))
    return out


def test_crops_keep_every_box_on_its_object(tmp_path):
    # one white rectangle per black image: after scale, crop, flips and transposes the box must be
    # the extent of the white pixels (within the resampling's pixel)
    ann, images = write_coco_dataset(tmp_path / "ds", _one_square_per_image(3))
    batches = _batches(ann, images, crop_size=64, batch_size=4)
    checked = 0
    for step in range(10):
        for image, target in zip(*batches(step)):
            assert image.shape == (3, 64, 64)
            if not len(target["boxes"]):
                continue  # the rectangle fell (mostly) outside the crop
            ys, xs = torch.nonzero(image[0] > 0.5, as_tuple=True)
            extent = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            assert torch.allclose(target["boxes"][0], extent, atol=1.5), (target["boxes"][0], extent)
            checked += 1
    assert checked > 20


def test_real_slots_are_the_same_whichever_extra_source_fills_the_rest(tmp_path):
    real_ann, real_images = write_coco_dataset(tmp_path / "real", synthetic_samples(n_images=5, seed=1))
    a = write_coco_dataset(tmp_path / "a", synthetic_samples(n_images=4, seed=2))
    b = write_coco_dataset(tmp_path / "b", synthetic_samples(n_images=7, seed=3))
    alone = _batches(real_ann, real_images, crop_size=48, batch_size=4)
    with_a = _batches(real_ann, real_images, a, crop_size=48, batch_size=4, real_share=0.5)
    with_b = _batches(real_ann, real_images, b, crop_size=48, batch_size=4, real_share=0.5)
    assert with_a.real_slots == 2
    for step in range(3):
        (ia, ta), (ib, tb), (ir, tr) = with_a(step), with_b(step), alone(step)
        for k in range(2):  # the real slots: identical pixels and boxes in all three
            assert torch.equal(ia[k], ib[k]) and torch.equal(ia[k], ir[k])
            assert torch.equal(ta[k]["boxes"], tr[k]["boxes"])
        assert not torch.equal(ia[2], ib[2])  # the other slots come from each extra source


def test_the_compact_model_keeps_images_at_their_own_scale():
    model = build_model("fcos_compact", num_classes=2, image_size=64).eval()
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 1.5e6
    batch, _ = model.transform([torch.rand(3, 100, 70)])
    assert batch.image_sizes == [(100, 70)]  # no resize, only padding to a multiple of 16


@pytest.mark.slow
def test_fcos_small_learns_the_shapes(tmp_path):
    # crops as tall as the images: the torchvision models resize both to the same shorter side
    ann, images = write_coco_dataset(tmp_path / "ds", synthetic_samples(n_images=24, size=(96, 128)))
    detector = train_detector(ann, images, progress=False, model="fcos_small", steps=200, batch_size=4,
                              image_size=128, crop_size=96, lr=1e-3, flips=False, scale_jitter=(1.0, 1.0))
    metrics = evaluate_detector(detector, ann, images)
    assert metrics.ap50 > 0.5, metrics.lines()


@pytest.mark.slow
def test_fcos_compact_learns_real_nuclei_from_twelve_instances():
    nuclei = REPO / "tests" / "assets" / "nuclei_dev"
    detector = train_detector(nuclei / "train_few" / "annotations.json", nuclei / "train_few" / "images",
                              progress=False, seed=0, device="cpu")
    metrics = evaluate_detector(detector, nuclei / "val" / "annotations.json", nuclei / "val" / "images")
    assert metrics.ap > 0.2, metrics.lines()  # never trained on val


def test_a_segmentation_without_a_bbox_trains_on_its_mask_extent(tmp_path):
    """COCO does not require `bbox` beside a segmentation (a KeyError in training before; found by
    tools/fuzz.py through export): the box is the extent of the mask."""
    import json

    import numpy as np

    from vision_synth.detector import _Pool

    samples = synthetic_samples(n_images=2, size=(48, 48))
    ann, images = write_coco_dataset(tmp_path / "d", samples)
    data = json.loads(ann.read_text())
    for record in data["annotations"]:
        del record["bbox"]
    ann.write_text(json.dumps(data))
    pool = _Pool.of(load_coco(ann, images), {f"class{c}": c for c in (1, 2, 3)})
    for boxes, sample in zip(pool.boxes, samples):
        xywh = sample.instances.boxes.astype(np.float32)
        assert np.array_equal(boxes, np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1))
