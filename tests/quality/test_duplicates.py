"""Near-duplicates by perceptual hash (and feature cosine): a planted duplicate is found within the
synthetic images and against the reference; removal publishes annotations.json without it."""

import json

import cv2
import numpy as np
import pytest

from helpers import write_coco_dataset
from quality_helpers import real, synthetic
from vision_synth.coco.reader import load_coco
from vision_synth.publish import Publication, publish
from vision_synth.quality.duplicates import cosine_pairs, find_duplicates, hamming, hash_pairs, phash


def jpeg(image, quality=70):
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def test_phash_survives_small_changes_and_separates_different_images():
    images = [s.image for s in real(30, seed=3, size=(96, 96))]
    hashes = np.stack([phash(im) for im in images])
    assert hashes.shape == (30, 8) and hashes.dtype == np.uint8
    near = [jpeg(images[0], 90), np.clip(images[0].astype(int) + 12, 0, 255).astype(np.uint8),
            cv2.resize(cv2.resize(images[0], (48, 48)), (96, 96))]
    for variant in near:
        assert hamming(phash(variant)[None], hashes[:1])[0, 0] <= 4
    distances = hamming(hashes, hashes)[np.triu_indices(30, 1)]
    assert distances.min() > 4  # no two different images collide


def test_hash_and_cosine_pairs_list_each_pair_once():
    hashes = np.stack([phash(s.image) for s in real(6, seed=4)])
    hashes[4] = hashes[1]
    assert hash_pairs(hashes, None, 4) == [(1, 4, 0.0)]
    assert hash_pairs(hashes[:2], hashes[4:5], 0) == [(1, 0, 0.0)]
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 16))
    feats[3] = feats[0] * 2.0  # same direction
    assert [(i, j) for i, j, _ in cosine_pairs(feats, None, np.zeros(16), 0.999)] == [(0, 3)]


def test_find_duplicates_keeps_the_first_of_a_pair_and_flags_copies_of_reference_images():
    syn = np.stack([phash(s.image) for s in synthetic(8, seed=5)])
    ref = np.stack([phash(s.image) for s in real(5, seed=6)])
    syn[6] = syn[2]  # planted duplicate within the synthetic set
    syn[3] = ref[4]  # a synthetic image that copies a reference image
    ids, ref_ids = list(range(11, 19)), list(range(1, 6))
    pairs = find_duplicates(ids, syn, ref_ids, ref, phash_max_distance=4)
    found = {(p.image_id, p.other_id, p.against) for p in pairs}
    assert found == {(17, 13, "synthetic"), (14, 5, "reference")}


def test_removal_publishes_annotations_without_the_images(tmp_path):
    samples = synthetic(6, seed=7)
    ann_path, images = write_coco_dataset(tmp_path / "d", samples)
    before = json.loads(ann_path.read_text())
    drop = [2, 5]
    # the publisher writes the removal: a staged copy renamed over annotations.json, never an in-place rewrite
    assert publish(tmp_path / "d", ann_path, Publication(passed=True, card="card", drop_images=tuple(drop))) == ann_path
    after = load_coco(ann_path, images)  # still a valid dataset
    assert sorted(im["id"] for im in after.images) == [1, 3, 4, 6]
    assert all(a["image_id"] not in drop for a in after.annotations)
    kept = [a for a in before["annotations"] if a["image_id"] not in drop]
    assert after.annotations == kept  # ids and records unchanged
    assert after.info["removed_duplicates"] == drop
    assert not list(ann_path.parent.rglob(".*.partial-*"))  # written atomically, nothing left behind
    assert not (tmp_path / "d" / ".vision_synth" / "staging" / "annotations.json").exists()  # renamed into place
    assert all((images / im["file_name"]).is_file() for im in before["images"])  # files stay


@pytest.mark.parametrize("max_distance", [0, 4, 10])
def test_a_planted_duplicate_is_found_at_any_threshold(max_distance):
    samples = synthetic(10, seed=8)
    hashes = np.stack([phash(s.image) for s in samples] + [phash(jpeg(samples[4].image, 90))])
    pairs = find_duplicates(list(range(1, 12)), hashes, phash_max_distance=max_distance)
    ids = {(p.image_id, p.other_id) for p in pairs}
    if max_distance >= 4:
        assert (11, 5) in ids
    assert all(p.value <= max_distance for p in pairs)
