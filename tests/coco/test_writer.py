import json

import numpy as np

from helpers import check_coco_labels, coco_self_eval, synthetic_samples, write_coco_dataset
from vision_synth.coco.reader import load_coco
from vision_synth.coco.writer import ShardWriter, merged_records, read_shard, sample_records, write_annotations


def test_fixture_dataset_is_exact_and_scores_ap_1(coco_dataset):
    ann, images, samples = coco_dataset
    data = check_coco_labels(ann)
    assert len(data["images"]) == len(samples)
    assert coco_self_eval(ann, "bbox") == 1.0 and coco_self_eval(ann, "segm") == 1.0
    ds = load_coco(ann, images)
    for sample, image in zip(samples, ds.images):
        assert np.array_equal(ds.instances(image).masks, sample.instances.masks)


def test_partial_last_line_of_a_shard_is_ignored(tmp_path):
    shard = tmp_path / "s.jsonl"
    with ShardWriter(shard) as w:
        w.add({"index": 0, "image": {}, "annotations": []})
    with open(shard, "a") as f:
        f.write('{"index": 1, "ima')  # killed mid-write
    assert [r["index"] for r in read_shard(shard)] == [0]


def test_merge_gives_the_same_file_whatever_the_split(tmp_path):
    samples = synthetic_samples(n_images=9)
    records = [sample_records(s, f"{s.index}.png") for s in samples]
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    outputs = []
    for parts in ([range(9)], [range(0, 5), range(5, 9)], [range(0, 3), range(3, 6), range(6, 9)], [range(0, 9, 2), range(1, 9, 2)]):
        folder = tmp_path / f"split{len(outputs)}"
        shards = []
        for k, part in enumerate(parts):
            shards.append(folder / f"{k}.jsonl")
            with ShardWriter(shards[-1]) as w:
                for i in part:
                    w.add(records[i])
        write_annotations(folder / "annotations.json", shards, {"description": "t"}, cats)
        outputs.append((folder / "annotations.json").read_bytes())
    assert all(o == outputs[0] for o in outputs)
    data = json.loads(outputs[0])
    assert [im["id"] for im in data["images"]] == list(range(1, 10))
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))


def test_merge_limit_and_duplicates(tmp_path):
    samples = synthetic_samples(n_images=4)
    shard_a, shard_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with ShardWriter(shard_a) as w:
        for s in samples:
            w.add(sample_records(s, "x.png"))
    with ShardWriter(shard_b) as w:
        w.add(sample_records(samples[1], "x.png"))  # the same index recorded twice
    assert [r["index"] for r in merged_records([shard_a, shard_b])] == [0, 1, 2, 3]
    assert [r["index"] for r in merged_records([shard_a, shard_b], limit=2)] == [0, 1]


def test_polygon_output_keeps_area_and_box_of_the_written_polygon(tmp_path):
    ann, _ = write_coco_dataset(tmp_path, synthetic_samples(), segmentation="polygon")
    check_coco_labels(ann)


def test_written_files_are_readable_by_others(tmp_path):
    import os

    from vision_synth.files import write_atomic

    write_atomic(tmp_path / "f.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
