"""int8 against float32 text vectors on real tasks: the check behind SentenceEmbedder's default.

int8 is the default only if every task stays within 0.5 points of float32. The data are built
offline by ``real_data.py`` from installed packages:

- emoji names -> Unicode emoji group (9 classes, ~3,600 names; 5-fold GroupKFold by base emoji,
  so skin-tone variants never sit on both sides): accuracy of StandardScaler +
  LogisticRegression(C=0.1);
- WordNet definitions -> lexical category (16 classes, 1,600 definitions; stratified 5-fold,
  seed 0): the same model;
- WordNet example sentence -> its synset's definition among all 1,600 (recall@1, @10);
- WordNet headword -> its synset's definition among all 1,600 (recall@1, @10).

Also printed: the cosine of each int8 vector to its float32 one, and the speed of both on the
benchmark's 2,000 short sentences (one run, side by side; see bench_text.py for the ratios to
raw sentence-transformers).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_text_int8.py
"""

from __future__ import annotations

import os
import time

import numpy as np
from _quality import print_quality_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOLERANCE = 0.5  # points


def accuracy(X, y, groups=None) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = GroupKFold(5) if groups is not None else StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, X, y, cv=cv, groups=groups).mean())


def recall(queries, documents, k: int) -> float:
    """Share of queries i whose document i ranks in the top k by cosine (ties count against)."""
    similarity = queries @ documents.T
    own = similarity[np.arange(len(queries)), np.arange(len(queries))]
    return float(((similarity > own[:, None]).sum(axis=1) < k).mean())


def scores(embedder, emoji, wordnet) -> tuple[dict, list]:
    vectors = [embedder.transform(list(texts)) for texts in
               (emoji["text"], wordnet["text"], wordnet["query"], wordnet["lemma"])]
    names, definitions, examples, lemmas = vectors
    return {
        "emoji name -> group, accuracy": accuracy(names, emoji["label"], emoji["group"]),
        "definition -> lexical category, accuracy": accuracy(definitions, wordnet["label"]),
        "example -> definition, recall@1": recall(examples, definitions, 1),
        "example -> definition, recall@10": recall(examples, definitions, 10),
        "headword -> definition, recall@1": recall(lemmas, definitions, 1),
        "headword -> definition, recall@10": recall(lemmas, definitions, 10),
    }, vectors


def main():
    from bench_text import sentences
    from real_data import emoji_names, wordnet_definitions

    from mmfeat.text import SentenceEmbedder

    emoji, wordnet = emoji_names(), wordnet_definitions()
    embedders = {p: SentenceEmbedder(precision=p, device="cpu", cache=False).fit(["warm up"])
                 for p in ("float32", "int8")}
    results, vectors = {}, {}
    for precision, embedder in embedders.items():
        results[precision], vectors[precision] = scores(embedder, emoji, wordnet)
    short = sentences(2000)
    speed = {}
    for precision in ("float32", "int8", "float32", "int8"):  # alternated, best of two
        start = time.perf_counter()
        embedders[precision].transform(short)
        speed[precision] = max(speed.get(precision, 0), len(short) / (time.perf_counter() - start))
    cosines = np.concatenate([(a * b).sum(axis=1)
                              for a, b in zip(vectors["float32"], vectors["int8"])])

    print(f"\nall-MiniLM-L6-v2, float32 vs int8 (ONNX Runtime, CPU); emoji names: "
          f"{len(emoji)} rows, WordNet: {len(wordnet)} synsets\n")
    worst = print_quality_table(results)
    print(f"| 2,000 short sentences, texts/s | {speed['float32']:.0f} | {speed['int8']:.0f} | "
          f"x{speed['int8'] / speed['float32']:.2f} |")
    print(f"\ncosine of int8 to float32 vectors over {cosines.size} texts: median "
          f"{np.median(cosines):.4f}, minimum {cosines.min():.4f}")
    verdict = "within" if worst >= -TOLERANCE else "NOT within"
    print(f"largest loss {-worst:.2f} points: {verdict} {TOLERANCE} points of float32 "
          "on every task")


if __name__ == "__main__":
    main()
