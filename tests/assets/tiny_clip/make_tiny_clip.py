"""Writes vocab.json and merges.txt of a tiny CLIP byte-level BPE tokenizer (for tests; no download).

Layout follows CLIP's: the 256 byte symbols, the same with "</w>", the learned merges, then
<|startoftext|> and <|endoftext|>. Merges are learned greedily from the words below, so prompts in
tests tokenize into a few real tokens instead of single bytes. Run: python make_tiny_clip.py
"""

import json
from collections import Counter
from pathlib import Path

WORDS = """a photo of the an on with and in scratch crack stain pit dent particles rust metal surface
ball cube mug bottle table wood fabric painted brushed cast steel red blue green white black shiny
dark small large defect object close up industrial inspection high quality blurry low lowres bad
background texture realistic""".split()
MERGES = 200


def bytes_to_unicode() -> dict[int, str]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


def learn_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    seqs = Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in words)
    merges = []
    for _ in range(count):
        pairs = Counter()
        for seq, n in seqs.items():
            for pair in zip(seq, seq[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = Counter()
        for seq, n in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            merged[tuple(out)] += n
        seqs = merged
    return merges


def main() -> None:
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    merges = learn_merges(WORDS, MERGES)
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    here = Path(__file__).parent
    (here / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False) + "\n")
    (here / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    print(f"{len(vocab)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
