"""vision_synth.seeding: per-sample and per-dataset streams are independent and reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from vision_synth.seeding import DATASET_STREAMS, rng_for, rng_for_dataset


def test_sample_streams_depend_on_seed_index_and_stream_only():
    draw = lambda *key: rng_for(*key).random(4).tolist()  # noqa: E731
    assert draw(3, 7) == draw(3, 7) and draw(3, 7, 1) == draw(3, 7, 1)
    assert len({tuple(draw(*k)) for k in [(3, 7), (3, 8), (4, 7), (3, 7, 1)]}) == 4


def test_the_split_stream_is_the_seed_root_sequence_so_existing_splits_stay():
    root = np.random.Generator(np.random.PCG64(np.random.SeedSequence(11)))  # how splits were drawn before
    assert rng_for_dataset(11, "split").permutation(50).tolist() == root.permutation(50).tolist()


def test_dataset_streams_differ_from_every_sample_stream_and_are_named():
    split = rng_for_dataset(5, "split").random(4).tolist()
    assert all(rng_for(5, i).random(4).tolist() != split for i in range(20))
    assert len(set(DATASET_STREAMS.values())) == len(DATASET_STREAMS)
    with pytest.raises(ValueError, match="unknown random stream 'shuffle'"):
        rng_for_dataset(5, "shuffle")


def test_named_streams_take_sub_streams_that_are_no_samples():
    from vision_synth.seeding import BACKGROUND_STREAM

    bank = [rng_for_dataset(5, "texture_bank", t, k).random(4).tolist() for t in range(3) for k in range(3)]
    assert len({tuple(b) for b in bank}) == 9
    assert rng_for_dataset(5, "texture_bank", 1, 2).random(4).tolist() == bank[5]
    samples = [rng_for(5, i, *s).random(4).tolist() for i in range(20) for s in [(), (0,), (1,), (BACKGROUND_STREAM,)]]
    assert not {tuple(b) for b in bank} & {tuple(s) for s in samples}
    with pytest.raises(ValueError, match="no sub-streams"):
        rng_for_dataset(5, "split", 3)  # the root's sub-streams are the samples' own


def test_a_range_draw_is_numpys_uniform_and_keeps_the_stream_in_step():
    """spec.uniform computes numpy's scalar uniform itself (low + (high − low)·random()): the same
    doubles and the same stream position, so the change of call left every sample's bytes alone."""
    from vision_synth.spec import uniform

    ranges = np.random.default_rng(5).uniform(-1e3, 1e3, (2000, 2))
    ranges.sort(axis=1)
    ours, numpys = rng_for(3, 7), rng_for(3, 7)
    for low, high in [*ranges.tolist(), (0.0, 2 * np.pi), (1, 4), (-0.35, 0.35), (np.float32(0.1), np.float32(0.7))]:
        assert uniform(ours, (low, high)) == float(numpys.uniform(low, high))
    assert ours.random() == numpys.random()
    before = ours.bit_generator.state
    assert uniform(ours, (2.5, 2.5)) == 2.5 and ours.bit_generator.state == before  # no draw for a single value
