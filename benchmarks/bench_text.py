"""SentenceEmbedder against a raw sentence-transformers loop, side by side in one process.

Both embed the same texts with all-MiniLM-L6-v2 (batch 64, unit vectors) on the CPU: ~2000
short, distinct sentences, then 500 texts of very different lengths (where batching texts of
similar length matters). mmfeat runs with its cache off, so the ratio is the cost of its
machinery: its default (int8 in ONNX Runtime on the CPU; vectors checked close to the raw
ones, cosine >= 0.95), precision="float32" (the same numbers, checked to 1e-4) and torch.
The quality of int8 on real tasks is benchmarks/bench_text_int8.py.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_text.py \\
        [--n 2000] [--n-mixed 500] [--rounds 3] [--default-only]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import paired

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SUBJECTS = ["The cat", "A young engineer", "My neighbour", "The committee", "Our team",
            "A small bird", "The old train", "Every student", "The market", "A quiet river"]
VERBS = ["watched", "repaired", "ignored", "described", "followed", "painted", "measured",
         "praised"]
OBJECTS = ["the red bicycle", "a strange noise", "the budget report", "an empty house", "the storm",
           "a new recipe", "the final match", "a broken window", "the city lights", "an old map"]
ENDINGS = ["this morning.", "before lunch.", "after the meeting.", "for hours.", "without a word.",
           "near the station.", "in the rain.", "last week."]


def sentences(n: int) -> list[str]:
    """``n`` distinct short sentences (5-12 words)."""
    out = []
    for i in range(n):
        s, v = SUBJECTS[i % 10], VERBS[(i // 10) % 8]
        o, e = OBJECTS[(i // 80) % 10], ENDINGS[(i // 800 + i) % 8]
        out.append(f"{s} {v} {o} {e}" if i < 800 * 8 else f"{s} {v} {o} {e} ({i})")
    assert len(set(out)) == n
    return out


def mixed_texts(n: int) -> list[str]:
    """``n`` distinct texts of 1 to 14 sentences: lengths as varied as real documents."""
    base, rng = sentences(max(n, 2000)), np.random.default_rng(0)
    return [" ".join(base[i:i + rng.integers(1, 15)]) for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-mixed", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--default-only", action="store_true",
                        help="only the default against the raw loop (the slow rows left out)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from mmfeat.text import SentenceEmbedder
    from mmfeat.text.sentence import resolve_model

    raw_model = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    rows = []
    runs = [(f"text: {args.n} short sentences", sentences(args.n)),
            (f"text: {args.n_mixed} texts of 1-14 sentences", mixed_texts(args.n_mixed))]
    variants = (("default", {}), ("precision='float32'", {"precision": "float32"}),
                ("backend='torch'", {"backend": "torch", "precision": "float32"}))
    for label, params in variants[:1] if args.default_only else variants:
        embedder = SentenceEmbedder(batch_size=64, device="cpu", cache=False,
                                    **params).fit(["warm up"])
        if not params:
            precision = "int8" if embedder._int8() else "float32"
            label += f" ({embedder._runtime('cpu')}, {precision})"
        rows += _rows(raw_model, embedder, label, runs, args.rounds, exact="precision" in params)
    if not args.default_only:
        rows.append(_int8_row(sentences(args.n), args.rounds))
    print("\nSentenceEmbedder(cache=False) vs SentenceTransformer.encode, all-MiniLM-L6-v2, "
          "batch 64, "
          f"CPU, {torch.get_num_threads()} torch threads, best of {args.rounds} paired rounds\n")
    print("| family | raw items/s | mmfeat items/s | ratio (median of paired rounds) |")
    print("|---|---|---|---|")
    for family, raw_rate, mm_rate, ratio in rows:
        print(f"| {family} | {raw_rate:.0f} | {mm_rate:.0f} | {ratio:.2f} |")


def _int8_row(texts, rounds):
    """precision='int8' against the float ONNX graph: speed, and how well it keeps the ranking
    of similarities (Spearman correlation of all pairwise cosines of 300 sentences)."""
    from scipy.stats import spearmanr

    from mmfeat.text import SentenceEmbedder

    exact = SentenceEmbedder(backend="onnx", precision="float32", cache=False).fit(["warm up"])
    int8 = SentenceEmbedder(precision="int8", cache=False).fit(["warm up"])
    sample = texts[:300]
    a, b = exact.transform(sample), int8.transform(sample)
    upper = np.triu_indices(len(sample), 1)
    rho = spearmanr((a @ a.T)[upper], (b @ b.T)[upper]).statistic
    exact_best, int8_best, ratio = paired(lambda: exact.transform(texts),
                                          lambda: int8.transform(texts),
                                           rounds)
    print(f"\nint8 vs float32 (ONNX): Spearman of pairwise cosines {rho:.4f}, "
          f"min cosine to the float vector {float(((a * b).sum(1)).min()):.4f}")
    return (f"text: {len(texts)} short sentences, precision='int8' (vs float32 ONNX as 'raw')",
            len(texts) / exact_best, len(texts) / int8_best, ratio)


def _rows(raw_model, embedder, backend, runs, rounds, exact):
    rows = []
    for family, texts in runs:
        def raw(texts=texts):
            return raw_model.encode(texts, batch_size=64, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)

        def mmfeat(texts=texts):
            return embedder.transform(texts)

        ours, theirs = mmfeat(), raw()  # also a warm-up
        if exact:
            np.testing.assert_allclose(ours, theirs, atol=1e-4)  # the same numbers
        else:
            assert (ours * theirs).sum(1).min() > 0.95  # int8: close to them
        raw_best, mm_best, ratio = paired(raw, mmfeat, rounds)
        rows.append((f"{family}, {backend}", len(texts) / raw_best, len(texts) / mm_best, ratio))
    return rows


if __name__ == "__main__":
    main()
