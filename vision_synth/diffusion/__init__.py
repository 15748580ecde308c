"""Conditional diffusion generators (diffusers): inpaint-insert, layout-to-image, refine.

Boxes and masks come from the layout the compositor plans, checked against the generated pixels.
"""

from vision_synth.diffusion.generator import DiffusionGenerator
from vision_synth.diffusion.spec import DiffusionSpec

__all__ = ["DiffusionGenerator", "DiffusionSpec"]
