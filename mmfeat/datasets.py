"""A small synthetic tri-modal dataset (image, text, audio) for demos and tests.

Every sample has a class, and each modality shows a *noisy view* of it, drawn
independently per modality: most of the time the class's cue, otherwise no cue at all.
A model that sees one modality is therefore capped well below perfect, while a model
that combines the three can use whichever modalities carry the cue: fusion genuinely
helps.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .optional import require

__all__ = ["demo_extractors", "make_multimodal", "load_manifest"]

#: Bumped whenever the generator's output changes, so that stale demo files are rebuilt.
_FORMAT_VERSION = 1

SAMPLE_RATE = 16_000
IMAGE_SIZE = 128
MODALITIES = ("image", "text", "audio")

# Per modality and sample, the probability that it shows the class's cue; otherwise it
# shows none. With 4 classes one modality is capped at 0.6 + 0.4 / 4 = 0.70 accuracy,
# while three independent views are all blank only 6.4 % of the time (fused cap 0.95).
# Blank views were preferred to views of a wrong class: those hurt a single modality
# the same, but as label noise they also make fitted models overfit, and the measured
# fusion gain (especially of early fusion over unscaled features) became fragile.
_P_CUE = 0.6

_MANIFEST = "manifest.csv"
_PARAMS = "manifest.json"
#: The file columns, each with its folder and file extension.
_FILES = {"image": ("images", "png"), "audio": ("audio", "wav"), "video": ("videos", "mp4")}


@dataclass(frozen=True)
class _Theme:
    label: str
    hue: int  # OpenCV hue, 0-179
    shape: str
    tone_hz: float
    words: tuple


# The first four are the default classes, so they are the most distinct in every
# modality: hues 25+ apart, different shapes, tones an octave apart, unrelated topics.
_THEMES = (
    _Theme("fire", 0, "triangle", 260, ("flames", "smoke", "campfire", "embers", "ashes",
           "sparks", "firewood", "fireplace", "matches", "bonfire", "chimney", "lighter")),
    _Theme("forest", 60, "circle", 560, ("pine trees", "moss", "oak trees", "ferns", "hiking",
           "trails", "owls", "woodland", "mushrooms", "tree bark", "the canopy", "deer")),
    _Theme("ocean", 112, "crescent", 1200, ("waves", "the tide", "surfing", "coral", "sailboats",
           "seagulls", "the shore", "dolphins", "the harbor", "saltwater", "the reef", "anchors")),
    _Theme("desert", 28, "star", 2600, ("sand", "dunes", "cactus", "camels", "an oasis",
           "a mirage", "the canyon", "scorpions", "drought", "a sandstorm", "lizards", "sunburn")),
    _Theme("snow", 90, "cross", 400, ("snow", "ice", "sleds", "a snowman", "the blizzard",
           "frost", "igloos", "skiing", "icicles", "glaciers", "mittens", "penguins")),
    _Theme("city", 140, "square", 850, ("the subway", "skyscrapers", "traffic", "taxis",
           "downtown", "apartments", "sidewalks", "buses", "neon signs", "offices",
           "crosswalks", "elevators")),
    _Theme("autumn", 14, "ring", 1800, ("pumpkins", "the harvest", "acorns", "maple leaves",
           "scarecrows", "apple cider", "orchards", "hayrides", "chestnuts", "raking",
           "sweaters", "squirrels")),
    _Theme("garden", 165, "bar", 3800, ("tulips", "roses", "seedlings", "compost",
           "the watering can", "the greenhouse", "bees", "lavender", "daisies", "flowerbeds",
           "a trowel", "hedges")),
)

# Neutral filler: the same pool for every class, so it carries no label information.
_NEUTRAL = ("coffee", "lunch", "the schedule", "paperwork", "my phone", "a podcast",
            "the meeting", "emails", "the weekend", "our plans", "a long nap", "the news")
_OPENERS = ("Honestly,", "So", "Well,", "Today", "Yesterday", "Again,", "Quick update:", "Ok,")
_TEMPLATES = (
    "{o} I can't stop thinking about {a} and {b}.",
    "{o} my friend sent me a photo of {a}, {n} and {b}.",
    "Quick note to self: {a}, {b}, and don't forget {n}.",
    "{o} we talked about {a} for an hour, then {b}.",
    "Is it just me or do {a} and {b} always go together?",
    "{o} the best part was {a}, though {n} was fine too.",
    "Spent the afternoon reading about {a} and {b}.",
    "{o} lots of talk about {a} and {b} lately.",
)


def _text(rng: np.random.Generator, cue: int | None, degraded: bool = False) -> str:
    """A short post: two content words of the shown class, mixed with neutral filler.
    ``degraded``: only one of the two is the class's, the other neutral."""
    pool = _NEUTRAL if cue is None else _THEMES[cue].words
    a, b = rng.choice(len(pool), size=2, replace=False)
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    second = _NEUTRAL[b % len(_NEUTRAL)] if degraded else pool[b]
    text = template.format(o=_OPENERS[rng.integers(len(_OPENERS))], a=pool[a], b=second,
                           n=_NEUTRAL[rng.integers(len(_NEUTRAL))])
    return text[0].upper() + text[1:]


# Unit outlines of the polygonal shapes; circle, ring and crescent are drawn with discs.
_POLYGONS = {
    "triangle": [(np.cos(t), np.sin(t)) for t in np.arange(3) * 2 * np.pi / 3],
    "square": [(0.75, 0.75), (-0.75, 0.75), (-0.75, -0.75), (0.75, -0.75)],
    "star": [(r * np.cos(t), r * np.sin(t))
             for t, r in zip(np.arange(10) * np.pi / 5, [1, 0.42] * 5)],
    "cross": [(0.3, 1), (0.3, 0.3), (1, 0.3), (1, -0.3), (0.3, -0.3), (0.3, -1), (-0.3, -1),
              (-0.3, -0.3), (-1, -0.3), (-1, 0.3), (-0.3, 0.3), (-0.3, 1)],
    "bar": [(1, 0.3), (-1, 0.3), (-1, -0.3), (1, -0.3)],
}


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    pts = np.asarray(_POLYGONS[shape], dtype=float) @ np.array([[c, s], [-s, c]]) * r
    return (pts + [cx, cy]).round().astype(np.int32)


def _image(rng: np.random.Generator, cue: int | None, degraded: bool = False) -> np.ndarray:
    """A BGR image: grey gradient and clutter, plus the shown class's coloured shape.
    ``degraded``: under heavy colour noise."""
    import cv2

    s = IMAGE_SIZE
    # Background: a grey (unsaturated) gradient, so that hue comes from the object only.
    level = rng.uniform(120, 220)
    slope = rng.uniform(-40, 40, size=2)
    ramp = np.linspace(-0.5, 0.5, s)
    grey = (level + slope[0] * ramp[None, :] + slope[1] * ramp[:, None]).clip(0, 255)
    img = np.ascontiguousarray(np.broadcast_to(grey.astype(np.uint8)[..., None], (s, s, 3)))
    # Clutter: grey lines and outlines of every size, a nuisance for shape-based features.
    for _ in range(rng.integers(3, 9)):
        g = int(rng.integers(40, 250))
        p1, p2 = _point(rng), _point(rng)
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, (g, g, g), int(rng.integers(1, 4)))
        else:
            cv2.circle(img, p1, int(rng.integers(4, 25)), (g, g, g), 1)
    # A few small specks of random colour, so that colour is not perfectly clean either.
    for _ in range(rng.integers(0, 4)):
        hsv = rng.integers((0, 100, 100), (180, 256, 256))
        cv2.circle(img, _point(rng), int(rng.integers(2, 5)), _hsv_to_bgr(*map(int, hsv)), -1)
    if cue is not None:
        theme = _THEMES[cue]
        r = rng.uniform(0.17, 0.3) * s
        cx, cy = rng.uniform(r, s - r, size=2)
        hue = (theme.hue + int(rng.integers(-3, 4))) % 180
        color = _hsv_to_bgr(hue, int(rng.integers(170, 256)), int(rng.integers(150, 256)))
        center, angle = (int(cx), int(cy)), rng.uniform(0, 2 * np.pi)
        if theme.shape == "circle":
            cv2.circle(img, center, int(r), color, -1, cv2.LINE_AA)
        elif theme.shape == "ring":
            cv2.circle(img, center, int(r * 0.8), color, max(3, int(r * 0.35)), cv2.LINE_AA)
        elif theme.shape == "crescent":
            # A disc minus an offset disc, painted through a mask to keep the background.
            mask = np.zeros((s, s), np.uint8)
            cv2.circle(mask, center, int(r), 255, -1)
            off = 0.55 * r * np.array([np.cos(angle), np.sin(angle)])
            cv2.circle(mask, (int(cx + off[0]), int(cy + off[1])), int(r * 0.8), 0, -1)
            img[mask > 0] = color
        else:
            cv2.fillPoly(img, [_polygon(theme.shape, cx, cy, r, angle)], color, cv2.LINE_AA)
    # Sensor noise, the same on all channels so that it adds no hue.
    noise = rng.normal(0, rng.uniform(2, 8), size=(s, s, 1))
    if degraded:  # drawn last, so that an undegraded image's draws are unchanged
        noise = noise + rng.normal(0, 45, size=(s, s, 3))
    return (img + noise).clip(0, 255).astype(np.uint8)


def _point(rng: np.random.Generator) -> tuple:
    return tuple(int(v) for v in rng.integers(0, IMAGE_SIZE, size=2))


def _hsv_to_bgr(h: int, s: int, v: int) -> tuple:
    import cv2

    px = cv2.cvtColor(np.uint8([[[h, s, v]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in px)


def _audio(rng: np.random.Generator, cue: int | None, pitch: float = 1.0,
           degraded: bool = False) -> np.ndarray:
    """One second of noise plus, for a shown class, beeps in that class's pitch band (times
    ``pitch``, a group's own voice). ``degraded``: the beeps faint under loud noise."""
    n = SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    wave = np.zeros(n)
    if cue is not None:
        f0 = _THEMES[cue].tone_hz * pitch * rng.uniform(0.96, 1.04)
        # Rhythm and timbre are nuisance: 1-4 short beeps, each with a slight glide.
        for _ in range(rng.integers(1, 5)):
            start, length = rng.uniform(0, 0.7), rng.uniform(0.12, 0.3)
            on = (t >= start) & (t < start + length)
            tt = t[on] - start
            f = f0 * (1 + rng.uniform(-0.04, 0.04) * tt / length)
            phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
            env = np.sin(np.pi * tt / length) ** 2
            for k, amp in ((1, 1.0), (2, rng.uniform(0, 0.5)), (3, rng.uniform(0, 0.25))):
                if k * f0 < 0.45 * SAMPLE_RATE:  # keep harmonics below Nyquist
                    wave[on] += amp * env * np.sin(k * phase)
        wave /= np.abs(wave).max()
    # Background: white noise plus a low rumble, at a random level.
    white = rng.normal(0, 1, n)
    rumble = np.interp(t * 200, np.arange(201), rng.normal(0, 1, 201))  # ~100 Hz band
    bg = white * rng.uniform(0.02, 0.12) + rumble * rng.uniform(0, 0.15)
    if degraded:
        wave, bg = 0.3 * wave, bg + rng.normal(0, 0.5, n)
    wave = (wave + bg) * rng.uniform(0.1, 0.7)  # random gain
    return wave.clip(-1, 1).astype(np.float32)


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


def _write_video(path, rng, cue):
    from ._synthetic_video import MOTIONS, write_clip

    if cue is None:
        write_clip(path, rng)
    else:
        write_clip(path, rng, motion=MOTIONS[cue], hue=_THEMES[cue].hue, tone_hz=_THEMES[cue].tone_hz)


def make_multimodal(n_samples=600, *, n_classes=4, random_state=0, data_dir="data/demo",
                    missing_rate=0.0, n_groups=None, weights=None, interaction=False,
                    corruption=0.0, video=False, overwrite=False) -> pd.DataFrame:
    """Write a synthetic image/text/audio classification dataset and return its manifest.

    Each modality shows, independently per sample, either the sample's class cue (60 %) or
    no cue at all (40 %), on top of nuisance variation:

    * image: a 128 px PNG with a grey cluttered background and one coloured shape, where
      the class sets the hue and the shape; position, size, rotation and noise are random;
    * text: a short post with two topical phrases of the class among neutral filler;
    * audio: a 1 s, 16 kHz mono WAV of beeps in the class's pitch band, with random rhythm,
      glide, timbre, background noise and gain.

    With 4 classes one modality alone therefore reaches at most 70 % accuracy, while the
    three together reach up to 95 % (about 90 % with standardized features and logistic
    regression).

    Parameters
    ----------
    n_samples : int, default=600
        Number of samples. Classes are balanced (they differ by at most one sample).
    n_classes : int, default=4
        Number of classes, 2 to 8. Labels are readable names: "fire", "forest", "ocean",
        "desert", "snow", "city", "autumn", "garden", in that order.
    random_state : int or None, default=0
        Seed. The same seed gives the same table and byte-identical files. None draws
        fresh data on every call (and never reuses existing files).
    data_dir : str or path-like, default="data/demo"
        Folder for ``images/``, ``audio/``, ``manifest.csv`` and ``manifest.json`` (the
        arguments the files were made with). Created if needed.
    missing_rate : float, default=0.0
        Fraction of rows (rounded to a whole number) in which one modality, chosen at
        random, is missing (None, and no file is written). Other cells are unchanged.
    n_groups : int or None, default=None
        Rows come in this many groups ("speakers" or "sessions", column ``group``: ``g0``,
        ``g1`` ...; sizes differ by at most one), each with its own voice: the audio cue's
        pitch is multiplied by a factor per group, between one octave down and one octave
        up. Within a group the audio stays a strong cue, but its tones do not carry over to a
        new group: evaluate with the groups held out (``LeaveOneGroupOut``) and fuse with
        ``groups=``. None: no groups, and the table and files are those of earlier versions.
    weights : sequence of float or None, default=None
        Class proportions, one non-negative number per class (normalised to sum to 1; rows
        per class are rounded so that they sum to ``n_samples``), e.g. ``[10, 1]`` for a 10:1
        imbalance. None: balanced classes.
    interaction : bool, default=False
        Make the class depend on a combination of two modalities that neither shows alone:
        every image shows the cue of a class ``a`` and every sound the cue of a class ``b``,
        each uniform whatever the label, and the label is class ``(a + b) % n_classes`` (with
        two classes, an XOR). The text shows no cue. A model that adds up per-modality
        evidence (concatenated features and a linear model, or late fusion) stays at chance;
        one that sees products of the modalities' features can learn it.
    corruption : float, default=0.0
        Fraction of rows (rounded) in which one modality, chosen at random, is corrupted: it
        shows the cue of a *different* class, degraded (image: heavy colour noise; audio: the
        beeps faint under loud noise; text: one topical phrase instead of two). That modality
        misleads on those rows, and only its lower confidence there gives it away.
    video : bool, default=False
        Add a ``video`` column: a 64x64 MP4 clip of 1-2 s at 10-15 fps (``videos/``, MPEG-4
        video and 16 kHz AAC sound, written with PyAV: ``pip install "mmfeat[video]"``). A
        disc moves over a grey background with a tone as its sound track; when the video
        shows the class's cue (60 %, drawn on its own like every modality) the class sets
        the disc's hue, how it moves (up, round in a circle, side to side, right ...) and
        the tone's pitch; otherwise a grey disc stands still or wanders at random, over a
        faint hum the same for every class. The video draws from a random stream of its
        own: every other column and file is byte-identical to the table without video. So
        ``missing_rate`` removes videos in rows of their own, ``missing_rate / 3`` of the
        rows (as many as each other modality on average; a row can then lack two cells),
        ``corruption`` and ``n_groups`` leave the video alone, and with ``interaction`` the
        video shows no cue.
    overwrite : bool, default=False
        Rewrite the files even when ``data_dir`` already holds a complete dataset made with
        the same arguments. When False such a dataset is reused as it is.

    Returns
    -------
    pandas.DataFrame
        One row per sample with columns ``id`` (int), ``image`` (absolute path to a PNG),
        ``text`` (str), ``audio`` (absolute path to a WAV), with ``video``, ``video``
        (absolute path to an MP4), ``label`` (str) and, with
        ``n_groups``, ``group`` (str). The
        ``manifest.csv`` on disk holds the same table with paths relative to ``data_dir``;
        :func:`load_manifest` reads it back.

    Examples
    --------
    >>> from mmfeat.datasets import make_multimodal
    >>> df = make_multimodal(60, data_dir="/tmp/mmfeat-demo")  # doctest: +SKIP
    >>> df.columns.tolist()  # doctest: +SKIP
    ['id', 'image', 'text', 'audio', 'label']
    >>> df["label"].value_counts().tolist()  # doctest: +SKIP
    [15, 15, 15, 15]
    """
    import cv2
    import soundfile as sf

    n_samples, n_classes = int(n_samples), int(n_classes)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if not 2 <= n_classes <= len(_THEMES):
        raise ValueError(f"n_classes must be between 2 and {len(_THEMES)}, got {n_classes}")
    if not 0.0 <= missing_rate <= 1.0:
        raise ValueError(f"missing_rate must be between 0 and 1, got {missing_rate}")
    if n_groups is not None:
        n_groups = int(n_groups)
        if not 2 <= n_groups <= n_samples:
            raise ValueError(f"n_groups must be None or between 2 and n_samples={n_samples}, "
                             f"got {n_groups}")
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != n_classes or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be {n_classes} non-negative numbers (one per class) "
                             f"with a positive sum, got {weights}")
    if not 0.0 <= corruption <= 1.0:
        raise ValueError(f"corruption must be between 0 and 1, got {corruption}")
    if video:
        require("av", who="make_multimodal(video=True)", extra="video")
    if random_state is not None:
        random_state = int(random_state)

    root = Path(data_dir)
    params = {"version": _FORMAT_VERSION, "n_samples": n_samples, "n_classes": n_classes,
              "random_state": random_state, "missing_rate": float(missing_rate)}
    # Options are recorded only when set, so that existing demo folders stay valid.
    options = {"n_groups": n_groups, "weights": weights, "interaction": interaction or None,
               "corruption": float(corruption) or None, "video": bool(video) or None}
    params.update({k: v for k, v in options.items() if v is not None})
    if not overwrite and random_state is not None:
        df = _reusable(root, params)
        if df is not None:
            return df

    root.mkdir(parents=True, exist_ok=True)
    # Drop the record first: an interrupted run must not look like a finished one later.
    (root / _PARAMS).unlink(missing_ok=True)
    (root / "images").mkdir(exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    if video:
        (root / "videos").mkdir(exist_ok=True)

    seed_seq = np.random.SeedSequence(random_state)
    # A third stream for the groups: the first two, and so every sample, are those of a
    # table without groups.
    plan_seq, items_seq, groups_seq = seed_seq.spawn(3)
    labels, shown, missing, degraded = _plan(plan_seq, n_samples, n_classes, missing_rate,
                                             weights=weights, interaction=bool(interaction),
                                             corruption=float(corruption))
    groups, pitch = _groups(groups_seq, n_samples, n_groups)
    if video:  # a fourth child: the three above, and so every other cell, are unchanged
        video_plan_seq, video_items_seq = seed_seq.spawn(1)[0].spawn(2)
        video_shown, video_missing = _video_plan(video_plan_seq, labels, missing_rate, bool(interaction))
        video_seqs = video_items_seq.spawn(n_samples)

    def write(i, item_seq):
        # One generator per sample: the bytes do not depend on the order samples are
        # written in (so threads may share the work), and missing cells remove only files.
        rng = np.random.default_rng(item_seq)
        voice = 1.0 if groups is None else pitch[groups[i]]
        img = _image(rng, shown["image"][i], (i, "image") in degraded)
        text = _text(rng, shown["text"][i], (i, "text") in degraded)
        wave = _audio(rng, shown["audio"][i], voice, (i, "audio") in degraded)
        row = {"id": i, "image": f"images/{i:05d}.png", "text": text,
               "audio": f"audio/{i:05d}.wav", "label": _THEMES[labels[i]].label}
        if groups is not None:
            row["group"] = f"g{groups[i]}"
        for m in MODALITIES:
            if (i, m) in missing:
                row[m] = None
        if row["image"] is not None:
            (root / row["image"]).write_bytes(cv2.imencode(".png", img)[1].tobytes())
        if row["audio"] is not None:
            sf.write(root / row["audio"], wave, SAMPLE_RATE, subtype="PCM_16")
        if video:
            row["video"] = None if i in video_missing else f"videos/{i:05d}.mp4"
            if row["video"] is not None:
                _write_video(root / row["video"], np.random.default_rng(video_seqs[i]), video_shown[i])
        return row

    # OpenCV, numpy and libsndfile release the GIL for most of the work.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        rows = list(pool.map(write, range(n_samples), items_seq.spawn(n_samples)))

    # Object columns keep None as the missing value (a pandas "str" column would use NaN).
    columns = ["id", *MODALITIES, *(["video"] if video else []), "label"] + ([] if groups is None else ["group"])
    manifest = pd.DataFrame(rows, columns=columns, dtype=object)
    manifest["id"] = manifest["id"].astype(np.int64)
    _remove_stale(root, manifest)
    manifest.to_csv(root / _MANIFEST, index=False)
    (root / _PARAMS).write_text(json.dumps(params, indent=1) + "\n")
    return _absolute(manifest, root)


def load_manifest(data_dir="data/demo") -> pd.DataFrame:
    """Read the ``manifest.csv`` written by :func:`make_multimodal`, with absolute paths.

    Parameters
    ----------
    data_dir : str or path-like, default="data/demo"
        The folder given to :func:`make_multimodal`.

    Returns
    -------
    pandas.DataFrame
        The table :func:`make_multimodal` returned; missing cells are None.

    Examples
    --------
    >>> df = load_manifest("data/demo")  # doctest: +SKIP
    """
    root = Path(data_dir)
    # Read everything as text: no "NA"-like string may turn into a float by accident.
    df = pd.read_csv(root / _MANIFEST, dtype=str, keep_default_na=False)
    df = df.astype({"id": np.int64, "label": object,
                    **({"group": object} if "group" in df.columns else {})})
    for m in (*MODALITIES, "video"):
        if m in df.columns:
            df[m] = pd.Series([None if v == "" else v for v in df[m]], index=df.index, dtype=object)
    return _absolute(df, root)


def _absolute(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    # Absolute paths keep working in worker processes and after a change of directory.
    base = root.resolve()
    df = df.copy()
    for m in _FILES.keys() & set(df.columns):
        df[m] = pd.Series([None if p is None else os.fspath(base / p) for p in df[m]],
                          index=df.index, dtype=object)
    return df


def _reusable(root: Path, params: dict):
    """The existing manifest when it was made with ``params`` and all its files exist."""
    try:
        if json.loads((root / _PARAMS).read_text()) != params:
            return None
        df = load_manifest(root)
    except (OSError, ValueError, KeyError):
        return None
    if len(df) != params["n_samples"]:
        return None
    paths = [p for m in _FILES.keys() & set(df.columns) for p in df[m] if p is not None]
    return df if all(os.path.isfile(p) for p in paths) else None


def _remove_stale(root: Path, manifest: pd.DataFrame) -> None:
    # Files of an earlier, larger (or less sparse) dataset would otherwise linger.
    keep = {p for m in _FILES.keys() & set(manifest.columns) for p in manifest[m] if p is not None}
    for sub, ext in _FILES.values():
        if not (root / sub).is_dir():
            continue
        for f in (root / sub).iterdir():
            if re.fullmatch(rf"\d+\.{ext}", f.name) and f"{sub}/{f.name}" not in keep:
                f.unlink()


def demo_extractors(quick: bool = False, *, video: bool = False, verbose: bool = False) -> dict:
    """The extractors for the demo data's columns, ``{modality: (column, extractor)}``, fresh
    on every call: the set ``mmfeat demo`` and the ``pipelines/`` scripts use.

    ``quick`` swaps the CNN for a colour histogram (no model to run for images and video
    frames). ``video`` adds three modalities read from the ``video`` column: what is seen
    (``video_frames``: 4 frames through the image extractor), how it moves (``video_motion``)
    and what is heard (``video_audio``: the sound track's MFCCs).
    """
    from .audio import MFCCStats
    from .image import CNNEmbedder, ColorHistogram
    from .text import SentenceEmbedder

    def image():
        return ColorHistogram(bins=(12, 4, 4), verbose=verbose) if quick else CNNEmbedder(verbose=verbose)

    extractors = {
        "image": ("image", image()),
        "text": ("text", SentenceEmbedder(verbose=verbose)),
        "audio": ("audio", MFCCStats(n_mfcc=20, verbose=verbose)),
    }
    if video:
        from .video import MotionStats, VideoAudio, VideoFrames

        extractors.update({
            "video_frames": ("video", VideoFrames(image(), n_frames=4, verbose=verbose)),
            "video_motion": ("video", MotionStats(n_pairs=8, size=64, verbose=verbose)),
            "video_audio": ("video", VideoAudio(MFCCStats(n_mfcc=20), verbose=verbose)),
        })
    return extractors
