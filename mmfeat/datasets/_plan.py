"""Which class each modality of each sample shows, which cells are missing or corrupted,
and the groups: drawn from seeded streams of their own, so that one option never
changes the samples another leaves alone."""

from __future__ import annotations

import numpy as np

MODALITIES = ("image", "text", "audio")

# Per modality and sample, the probability that it shows the class's cue; otherwise it
# shows none. With 4 classes one modality is capped at 0.6 + 0.4 / 4 = 0.70 accuracy,
# while three independent views are all blank only 6.4 % of the time (fused cap 0.95).
# Blank views were preferred to views of a wrong class: those hurt a single modality
# the same, but as label noise they also make fitted models overfit, and the measured
# fusion gain (especially of early fusion over unscaled features) became fragile.
_P_CUE = 0.6


def _plan(seed_seq, n_samples: int, n_classes: int, missing_rate: float, *, weights=None,
          interaction=False, corruption=0.0):
    """Labels, the class each modality shows (None: no cue), the missing cells and the
    degraded (corrupted) cells."""
    # A third stream for corruption: spawn(3) starts with the two children spawn(2) gave.
    plan_rng, mask_rng, corrupt_rng = (np.random.default_rng(s) for s in seed_seq.spawn(3))
    if weights is None:
        labels = plan_rng.permutation(np.arange(n_samples) % n_classes)  # balanced classes
    else:
        labels = plan_rng.permutation(np.repeat(np.arange(n_classes), _counts(weights, n_samples)))
    shown = {}
    if interaction:
        # The class is the sum of the image's and the audio's cues (mod n_classes): each cue
        # alone is uniform whatever the class, so only their combination tells it.
        first = plan_rng.integers(n_classes, size=n_samples)
        shown["image"] = [int(a) for a in first]
        shown["audio"] = [int(b) for b in (labels - first) % n_classes]
        shown["text"] = [None] * n_samples
    else:
        for m in MODALITIES:
            cue = plan_rng.random(n_samples) < _P_CUE
            shown[m] = [int(y) if c else None for y, c in zip(labels, cue)]
    # Missingness is drawn from its own stream: the same seed gives the same samples,
    # whatever the missing_rate, only with some cells removed.
    n_missing = int(round(missing_rate * n_samples))
    rows = mask_rng.choice(n_samples, size=n_missing, replace=False)
    which = mask_rng.integers(len(MODALITIES), size=n_missing)
    missing = {(int(r), MODALITIES[w]) for r, w in zip(rows, which)}
    # A corrupted cell shows another class's cue, degraded: a mix-up a model can only catch
    # by being less sure of it.
    n_corrupt = int(round(corruption * n_samples))
    rows = corrupt_rng.choice(n_samples, size=n_corrupt, replace=False)
    which = corrupt_rng.integers(len(MODALITIES), size=n_corrupt)
    shift = corrupt_rng.integers(1, n_classes, size=n_corrupt)
    degraded = set()
    for r, w, k in zip(rows, which, shift):
        shown[MODALITIES[w]][r] = int((labels[r] + k) % n_classes)
        degraded.add((int(r), MODALITIES[w]))
    return labels, shown, missing, degraded


def _counts(weights, n_samples: int) -> np.ndarray:
    """Rows per class for class proportions ``weights`` (largest remainders, so they sum up)."""
    share = np.asarray(weights, dtype=float) / np.sum(weights) * n_samples
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[: n_samples - counts.sum()]] += 1
    return counts


def _groups(seed_seq, n_samples: int, n_groups: int | None):
    """Each row's group and each group's pitch factor (None, None without groups).

    The factors are spread evenly from one octave down to one octave up, in a random order:
    the classes' tones are about an octave apart, so a model that learned the tones of the
    groups it has seen is misled on a new group, while within a seen group the tones stay a
    strong cue. (Drawn at random, factors can bunch together, and then groups barely differ.)
    """
    if n_groups is None:
        return None, None
    rng = np.random.default_rng(seed_seq)
    groups = rng.permutation(np.arange(n_samples) % n_groups)
    pitch = 2.0 ** rng.permutation(np.linspace(-1.0, 1.0, n_groups))
    return groups, pitch


def _video_plan(seed_seq, labels, missing_rate: float, interaction: bool):
    """The class each video shows (None: no cue) and the rows whose video is missing, from a
    stream of their own, so that the other columns are those of a table without video."""
    rng = np.random.default_rng(seed_seq)
    cue = rng.random(len(labels)) < _P_CUE
    shown = [int(y) if c and not interaction else None for y, c in zip(labels, cue)]
    # As many missing videos as, on average, missing cells of each other modality.
    n_missing = int(round(missing_rate * len(labels) / len(MODALITIES)))
    return shown, {int(r) for r in rng.choice(len(labels), size=n_missing, replace=False)}
