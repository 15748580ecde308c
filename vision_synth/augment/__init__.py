"""Augmentation stage: albumentations pipelines (in albumentations' own serialization format) and
copy-paste across samples, with boxes and areas re-derived from the transformed masks.

Importing this package does not import albumentations; `albu` (the only module that does) is loaded
when a pipeline is.
"""

from vision_synth.augment.copy_paste import copy_paste
from vision_synth.augment.spec import AugmentSpec, CopyPasteSpec, load_augment_spec
from vision_synth.augment.stage import (AugmentRules, augment_sample, augmented_copies, output_index,
                                        source_of)

__all__ = ["AugmentRules", "AugmentSpec", "CopyPasteSpec", "augment_sample", "augmented_copies", "copy_paste",
           "load_augment_spec", "output_index", "source_of"]
