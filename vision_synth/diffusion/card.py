"""The diffusion section of the dataset card: what the label check and the sample guards did.

Counted from the images' own records (their `diffusion-check:...` stage, written with each image),
so the figures hold whatever the processes, shards or resumptions that made the dataset; a skipped
sample has no record, and is counted as the images asked for minus the images written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

STAGE = re.compile(r"^diffusion-check:(.*)$")
FIELDS = ("kept", "rejected", "flagged", "nan", "redrawn", "upcast")


def check_counts(images: Iterable[dict]) -> tuple[Counter, int]:
    """(summed counts of every image's diffusion-check stage, number of images)."""
    totals: Counter = Counter()
    count = 0
    for image in images:
        count += 1
        for stage in image.get("stages", ()):
            match = STAGE.match(stage)
            if match:
                for part in match.group(1).split(","):
                    key, _, value = part.partition("=")
                    totals[key] += int(value)
    return totals, count


def card_section(expected_images: int, images: Iterable[dict]) -> str:
    """Markdown: the planned instances and what became of them, and the samples not written."""
    totals, written = check_counts(images)
    skipped = max(0, expected_images - written)
    planned = sum(totals[k] for k in ("kept", "rejected", "flagged", "nan"))
    return f"""
## Diffusion label check
| planned instances | kept | rejected by the check | dropped: safety checker | dropped: NaN/Inf |
| --- | --- | --- | --- | --- |
| {planned} | {totals['kept']} | {totals['rejected']} | {totals['flagged']} | {totals['nan']} |

- draws made again (flagged or non-finite, next seed of the sample's stream): {totals['redrawn']}
- decodes retried with the VAE in float32 (NaN/Inf in half precision): {totals['upcast']}
- samples skipped (every draw of their image flagged or non-finite; never written black): {skipped}
"""
