"""DiffusionSpec: each mode asks for what it needs and refuses what does not apply."""

import pytest
from pydantic import ValidationError

from vision_synth.diffusion.spec import DiffusionSpec

SCENE = {"prompt": "a metal surface"}


@pytest.mark.parametrize("changes, error", [
    ({"mode": "inpaint-insert"}, None),
    ({"mode": "refine", "scene_prompt": SCENE}, None),
    ({"mode": "layout-to-image", "controlnet": "cn", "scene_prompt": SCENE}, None),
    ({"mode": "layout-to-image", "scene_prompt": SCENE}, "needs controlnet"),
    ({"mode": "refine", "controlnet": "cn", "scene_prompt": SCENE}, "controlnet applies to layout-to-image only"),
    ({"mode": "refine"}, "needs scene_prompt"),
    ({"mode": "inpaint-insert", "background": "generated"}, "needs scene_prompt"),
    ({"mode": "refine", "scene_prompt": SCENE, "background": "generated"}, "applies to inpaint-insert only"),
    ({"mode": "refine", "scene_prompt": SCENE, "refine_masks": True}, "refine_masks applies to inpaint-insert only"),
    ({"mode": "layout-to-image", "controlnet": "cn", "scene_prompt": SCENE, "strength": 0.5}, "strength does not apply"),
    ({"mode": "refine", "scene_prompt": SCENE, "steps": 2}, "steps × strength must be at least 1"),
    ({"mode": "inpaint-insert", "attention": "flash"}, "Input should be"),
    ({"mode": "inpaint-insert", "scheduler": "pndm"}, "Input should be"),
    ({"mode": "inpaint-insert", "prompts": {"pit": {"prompt": "a pit", "ade20k": "pothole"}}},
     "'pothole' is not one of the 150 ADE20K classes"),
    ({"mode": "layout-to-image", "controlnet": "cn", "scene_prompt": SCENE, "prompts": {"ball": {"prompt": "a ball"}}},
     "set prompts.<name>.ade20k for ball"),
    ({"mode": "layout-to-image", "controlnet": "cn", "scene_prompt": SCENE, "control": "canny",
      "prompts": {"ball": {"prompt": "a ball"}}}, None),
    ({"mode": "layout-to-image", "controlnet": "cn", "scene_prompt": SCENE, "control_background": "tabletop"},
     "control_background: 'tabletop' is not one of the 150 ADE20K classes \\(close: table"),
    ({"mode": "refine", "scene_prompt": SCENE, "controlnet_variant": "fp16"}, "controlnet_variant applies with a controlnet"),
    ({"mode": "inpaint-insert", "control": "edges"}, "Input should be 'segmentation' or 'canny'"),
    ({"mode": "inpaint-insert", "unknown": 1}, "Extra inputs are not permitted"),
])
def test_modes_validate(changes, error):
    data = {"model": "org/model", **changes}
    if error is None:
        DiffusionSpec.model_validate(data)
    else:
        with pytest.raises(ValidationError, match=error):
            DiffusionSpec.model_validate(data)


def test_defaults():
    spec = DiffusionSpec(mode="refine", model="m", scene_prompt=SCENE)
    assert spec.offline and spec.scheduler == "dpmsolver++" and spec.dtype == "auto" and spec.attention == "auto"
    assert spec.effective_strength == 0.3
    assert spec.variant == "auto" and spec.controlnet_variant == "auto" and spec.max_redraws == 2
    assert DiffusionSpec(mode="inpaint-insert", model="m").effective_strength == 1.0
