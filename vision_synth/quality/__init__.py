"""Quality gate: fidelity (FID/KID on Inception-v3 features, or a named proxy), duplicates, label
sanity, memorisation (distance to closest record), utility (detector trained with and without the
synthetic data, scored on real images), the table of gates, the report's values and the one
renderer of cards and reports. It measures only: vision_synth/publish.py writes the verdict.

Import `measure_quality` and the rest from their modules; this package's import stays light.
"""

from vision_synth.quality.gate import GateFailed
from vision_synth.quality.spec import QualitySpec

__all__ = ["GateFailed", "QualitySpec"]
