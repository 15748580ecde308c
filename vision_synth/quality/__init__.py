"""Quality gate: fidelity (FID/KID on Inception-v3 features, or a named proxy), duplicates, label
sanity, memorisation (distance to closest record), utility (detector trained with and without the
synthetic data, scored on real images), the gate that publishes or rejects, and the dataset card.

Import `run_quality` and the rest from their modules; this package's import stays light.
"""

from vision_synth.quality.gate import GateFailed
from vision_synth.quality.spec import QualitySpec

__all__ = ["GateFailed", "QualitySpec"]
