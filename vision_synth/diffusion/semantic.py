"""The optional semantic check: does each kept instance show its category? (a local CLIP model)

The pixel checks (check.py) tell a painted region from an unpainted one; they cannot tell a
scratch from a stain. With `check.semantic`, each kept instance's crop (its box with a margin) is
scored by CLIP against the prompts of every category, and kept when its own category gets at least
`min_probability` of the softmax over them. The model is read from a local folder or the local
Hugging Face cache (safetensors only, never downloaded); without one the run stops with one line.
"""

from __future__ import annotations

import numpy as np

from vision_synth.errors import VisionSynthError


class SemanticCheck:
    def __init__(self, spec, prompts: dict[int, str], offline: bool = True) -> None:
        from vision_synth.diffusion.loading import (SPEC_KEYS, check_safetensors, is_offline, load_or_explain,
                                                    resolve_folder)

        key = SPEC_KEYS["semantic"]
        self.spec = spec
        try:
            folder = resolve_folder("semantic", spec.model, is_offline(offline), allow_patterns=["*.json", "*.txt",
                                                                                                 "*.safetensors"])
        except VisionSynthError as exc:
            raise VisionSynthError(f"{exc} (the semantic check needs a CLIP model, e.g. openai/clip-vit-base-patch32; "
                                   f"or remove check.semantic)") from None
        check_safetensors(folder, None, "the CLIP model")
        from transformers import CLIPModel, CLIPProcessor

        self.model = load_or_explain(lambda: CLIPModel.from_pretrained(folder, use_safetensors=True, local_files_only=True),
                           "semantic", folder).eval()
        self.processor = load_or_explain(lambda: CLIPProcessor.from_pretrained(folder, local_files_only=True), "semantic", folder)
        self.category_ids = sorted(prompts)
        import torch

        with torch.inference_mode():
            text = self.processor(text=[prompts[c] for c in self.category_ids], return_tensors="pt", padding=True)
            features = self.model.get_text_features(**text)
        self.text = torch.nn.functional.normalize(_tensor(features), dim=-1)

    def probabilities(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """N×C: softmax over the categories (in `category_ids` order) of each mask's crop."""
        import torch

        boxes = [self._box(mask) for mask in masks]
        crops = [image[y0:y1, x0:x1] for y0, y1, x0, x1 in boxes]
        with torch.inference_mode():
            pixels = self.processor(images=crops, return_tensors="pt")
            features = torch.nn.functional.normalize(_tensor(self.model.get_image_features(**pixels)), dim=-1)
            logits = self.model.logit_scale.exp() * features @ self.text.T
        return logits.softmax(dim=-1).numpy()

    def agrees(self, image: np.ndarray, masks: np.ndarray, category_ids, keep: np.ndarray) -> np.ndarray:
        """(N,) bool: True where the instance is kept and its own category wins enough probability."""
        out = np.zeros(len(masks), bool)
        rows = np.flatnonzero(keep & masks.reshape(len(masks), -1).any(axis=1))
        if not len(rows):
            return out
        probs = self.probabilities(image, masks[rows])
        column = {c: j for j, c in enumerate(self.category_ids)}
        for r, p in zip(rows, probs):
            out[r] = p[column[int(category_ids[r])]] >= self.spec.min_probability
        return out

    def _box(self, mask: np.ndarray) -> tuple[int, int, int, int]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        margin = int(round(self.spec.context * max(y1 - y0, x1 - x0)))
        h, w = mask.shape
        return max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin)


def _tensor(features):
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    return features if hasattr(features, "norm") else features.pooler_output
