"""The meta-learner's side of late fusion: its input built from the modalities' outputs (the
layout of its columns, missing modalities filled, per-sample trust), and how each modality's
share of a row's decision is measured (:meth:`~LateFusionClassifier.modality_weights`)."""

from __future__ import annotations

import numpy as np

from .blocks import available_rows
from .columns import as_numbers, passthrough_columns, select
from .task import class_columns

TRUST_MEASURES = ("margin", "max", "entropy")
# With outliers="trust" the meta-learner sees a modality's novelty over its threshold, capped
# here: past it a row is strange, and how much more so need not be extrapolated linearly.
NOVELTY_CAP = 2.0


def confidence(proba, measure):
    """How sure each row's probabilities are, from 0 (every class equally likely) to 1 (one
    class certain): the gap between the two highest, the highest rescaled, or one minus the
    entropy over its maximum."""
    n_classes = proba.shape[1]
    if measure == "margin":
        top = np.sort(proba, axis=1)
        return top[:, -1] - top[:, -2]
    if measure == "max":
        return (proba.max(axis=1) - 1 / n_classes) / (1 - 1 / n_classes)
    proba = np.clip(proba, 1e-12, 1.0)
    return 1 + (proba * np.log(proba)).sum(axis=1) / np.log(n_classes)


def log_odds(proba):
    """Each class's log-probability minus the row's mean log-probability (with two classes,
    half the log-odds), probabilities clipped to [1e-4, 1]."""
    logs = np.log(np.clip(proba, 1e-4, 1.0))
    return logs - logs.mean(axis=1, keepdims=True)


def meta_layout(fusion):
    """Where each modality's columns lie in the meta-learner's input: ``({name: (the output
    columns it keeps, (start, stop) of its block, trust)}, column names)``, recorded by
    ``fit``. A modality's block is its evidence: its kept outputs and, with ``trust``, its
    confidence and the outputs' log-odds times it, and with ``outliers="trust"`` its novelty
    and the outputs' departure from the fill times it. The ``{name}_available`` column after
    it (with ``handle_missing``) says whether the row has it; passthrough columns come last."""
    trust = getattr(fusion, "trust", None)
    novelty = fusion.__dict__.get("_outlier_inputs", False)
    layout, names = {}, []
    for name in fusion.estimators_:
        columns, labels = fusion._task.stack_columns(name)
        start = len(names)
        names += [f"{name}_{label}" for label in labels]
        if trust is not None:
            names += [f"{name}_trust"] + [f"{name}_{label}_x_trust" for label in labels]
        if novelty:
            names += [f"{name}_novelty"] + [f"{name}_{label}_x_novelty" for label in labels]
        layout[name] = (columns, (start, len(names)), trust)
        if fusion.handle_missing:
            names.append(f"{name}_available")
    return layout, names + [str(c) for c in passthrough_columns(fusion.passthrough)]


def _layout(fusion):
    return fusion.__dict__.get("_layout") or meta_layout(fusion)[0]  # saved by an older mmfeat


def meta_features(fusion, outputs, X, novelties=None):
    """The meta-learner's input: per modality its output (missing rows filled), with
    ``trust`` its confidence (0 where missing) and the output's log-odds times it, with
    ``outliers="trust"`` its novelty over its threshold (``novelties``, capped; 0 where
    missing) and the output's departure from the fill times it, and with ``handle_missing`` a
    0/1 availability column; then the passthrough columns."""
    layout = _layout(fusion)
    novelty = fusion.__dict__.get("_outlier_inputs", False)
    novelties = novelties or {}
    blocks = []
    for name, out in outputs.items():
        columns, _, trust = layout[name]
        available = available_rows(out)
        filled = np.where(available[:, None], out, fusion._fill[name])
        blocks.append(filled[:, columns])
        if trust is not None:
            sure = np.zeros((len(out), 1))
            sure[available, 0] = confidence(out[available], trust)
            blocks += [sure, sure * log_odds(filled)[:, columns]]
        if novelty:
            strange = np.zeros((len(out), 1))
            if name in novelties:
                threshold = max(fusion._novelty[name]["threshold"], 1e-12)
                found = available & ~np.isnan(novelties[name])
                strange[found, 0] = np.minimum(novelties[name][found] / threshold, NOVELTY_CAP)
            blocks += [strange, strange * (filled - fusion._fill[name])[:, columns]]
        if fusion.handle_missing:
            blocks.append(available[:, None].astype(np.float64))
    columns = passthrough_columns(fusion.passthrough)
    if columns:
        blocks.append(as_numbers(select(X, columns), "passthrough").astype(np.float64))
    return np.hstack(blocks)


def shares(fusion, outputs, X, novelties=None):
    """Each modality's share of each row's decision (see ``modality_weights``), as an array
    ``(n_rows, n_modalities)`` from the modalities' outputs on the rows."""
    available = np.column_stack([available_rows(out) for out in outputs.values()])
    moves = available.astype(np.float64)  # the fixed rules: by their weights
    weights = fusion._task.rule_weights() if fusion.final_estimator_ is None else None
    if weights is not None:
        moves = moves * weights[None, :]
    if fusion.final_estimator_ is not None:
        meta = meta_features(fusion, outputs, X, novelties)
        missing = meta_features(fusion, {name: np.full_like(out, np.nan)
                                         for name, out in outputs.items()}, X)
        scores = final_scores(fusion, meta)
        rows, predicted = np.arange(len(meta)), scores.argmax(axis=1)
        for m, (_, (start, stop), _) in enumerate(_layout(fusion).values()):
            occluded = meta.copy()
            occluded[:, start:stop] = missing[:, start:stop]
            moves[:, m] = np.abs(scores - final_scores(fusion, occluded))[rows, predicted]
    even = np.where(available.any(axis=1, keepdims=True), available, True)
    moves = np.where(moves.sum(axis=1, keepdims=True) > 0, moves, even)
    return moves / moves.sum(axis=1, keepdims=True)


def final_scores(fusion, meta):
    """The meta-learner's scores: per class (one column for a binary decision function or
    a regression), from its decision function, else its probabilities or predictions."""
    final = fusion.final_estimator_
    for method in ("decision_function", "predict_proba"):
        if hasattr(final, method):
            return np.asarray(getattr(final, method)(meta), dtype=np.float64).reshape(len(meta), -1)
    return class_columns("final_estimator", final.predict(meta), None, fusion._task.classes,
                         "predict")
