import numpy as np
import pytest

from vision_synth.types import Instances, Provenance, Sample


def two_instances():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 1:4, 2:6] = True
    masks[1, 5:9, 5:7] = True
    return Instances(masks, [3, 7], attributes={"occlusion": np.array([0.0, 0.5]), "source": np.array(["a", "b"], object)})


def test_boxes_and_areas_are_derived_from_masks():
    inst = two_instances()
    assert inst.boxes.tolist() == [[2, 1, 4, 3], [5, 5, 2, 4]]
    assert inst.areas.tolist() == [12, 8]


def test_filtering_keeps_arrays_parallel():
    inst = two_instances()
    sub = inst[np.array([False, True])]
    assert len(sub) == 1 and sub.category_ids.tolist() == [7]
    assert sub.attributes["occlusion"].tolist() == [0.5] and sub.attributes["source"].tolist() == ["b"]
    assert sub.boxes.tolist() == [[5, 5, 2, 4]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"masks": np.zeros((2, 4, 4)), "category_ids": [1]}, "2 masks but 1 category ids"),
        ({"masks": np.zeros((4, 4)), "category_ids": []}, "N×H×W"),
        ({"masks": np.zeros((1, 4, 4)), "category_ids": [1], "amodal_masks": np.zeros((1, 5, 4))}, "amodal"),
        ({"masks": np.zeros((1, 4, 4)), "category_ids": [1], "attributes": {"occlusion": np.zeros(2)}}, "occlusion"),
    ],
)
def test_inconsistent_instances_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Instances(**kwargs)


def test_sample_checks_image_and_mask_sizes():
    inst = two_instances()
    with pytest.raises(ValueError, match="do not match"):
        Sample(0, 0, np.zeros((12, 10, 3), np.uint8), inst, Provenance("test"))
    with pytest.raises(ValueError, match="uint8"):
        Sample(0, 0, np.zeros((10, 10, 3), np.float32), inst, Provenance("test"))
    sample = Sample(0, 0, np.zeros((10, 10, 3), np.uint8), inst, Provenance("test"))
    assert sample.replace(index=4).index == 4 and sample.index == 0
