"""Real data sets built offline from what installed packages ship, for choosing defaults.

Nothing here is downloaded: the material comes from scikit-learn (``load_digits``) and from
Debian packages (``fonts-noto-color-emoji``, ``unicode-data``, ``wordnet``, ``espeak-ng``).
Every builder writes its files under ``data/real/<name>/`` (git-ignored), reuses them when
they are there, and returns a DataFrame with one row per sample: file paths and texts per
modality, ``label`` and ``group`` (what a leave-one-group-out protocol holds out together).

Multimodal sets (``python benchmarks/real_data.py`` builds all of them):

- :func:`digits`: 1,797 real handwritten digits (8x8, upscaled) with the digit's name spoken
  by six espeak-ng voices (pitch and speed drawn per row) over another digit's name spoken by
  another voice (a second talker, as in a room); 10 classes, grouped by the first voice.
- :func:`emoji`: Noto colour emoji glyphs, their Unicode CLDR names, and the name spoken;
  9 classes (the Unicode emoji group), grouped by base emoji (skin-tone variants together).
- :func:`wordnet`: WordNet definitions labelled by lexical category (16 noun and verb
  categories), with the headword spoken: the audio is near chance; no natural groups (the
  group is the synset's first lemma).

Text-only sets (for text models alone): :func:`emoji_names` (name -> Unicode group),
:func:`wordnet_definitions` (definition -> lexical category, with the synset's example
sentence beside its definition: a retrieval pairing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1] / "data" / "real"
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
WORDNET_DIR = Path("/usr/share/wordnet")
#: espeak-ng's own English voices (the MBROLA ones need voice files that are not installed).
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
# WordNet's lexicographer files, by number (the "lex_filenum" field of data.noun/data.verb).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
# Bumped when a builder's output changes, so that stale files are rebuilt.
_VERSION = 1


def _require(path, package):
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: install the Debian package {package} "
                                f"(apt-get install -y {package}).")


def _cached(name, build):
    """The manifest of data set ``name``, built by ``build(folder)`` unless it is there."""
    folder = ROOT / name
    manifest = folder / f"manifest-v{_VERSION}.csv"
    if manifest.exists():
        df = pd.read_csv(manifest, keep_default_na=False)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        df = build(folder)
        df.to_csv(manifest, index=False)
    for column in ("image", "audio"):
        if column in df:  # stored relative, so the folder can move
            df[column] = [str(folder / p) for p in df[column]]
    return df


def speak(text, voice, path, *, pitch=50, speed=175):
    """Write ``text`` spoken by espeak-ng ``voice`` to the WAV file ``path`` (22,050 Hz)."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is missing: apt-get install -y espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w",
                    str(path), text], check=True, capture_output=True)


def _speak_rows(folder, texts, rng):
    """Speak each text with a voice taken in turn and a pitch and speed drawn per row;
    return (relative wav paths, voices)."""
    (folder / "audio").mkdir(exist_ok=True)
    voices = [VOICES[i % len(VOICES)] for i in rng.permutation(len(texts))]
    paths = []
    for i, (text, voice) in enumerate(zip(texts, voices)):
        rel = f"audio/{i:05d}.wav"
        speak(text, voice, folder / rel, pitch=int(rng.integers(20, 81)),
              speed=int(rng.integers(130, 221)))
        paths.append(rel)
    return paths, voices


def _overlay(folder, paths, voices, labels, rng):
    """Mix into each clip another row's clip of a different label by a different voice, at
    -3 to +3 dB of the first clip's level, each starting after a random delay: a second talker
    as loud. Without it a synthetic voice is recognised almost perfectly whoever speaks (0.995
    out of voice with MFCCs and an SVM; 0.95 with the second talker 0 to 6 dB softer and later),
    and the data set would rank nothing."""
    import soundfile as sf

    clips = [sf.read(folder / p, dtype="float32") for p in paths]
    mixed = []
    for i, (wave, sr) in enumerate(clips):
        others = [j for j in range(len(clips)) if labels[j] != labels[i] and voices[j] != voices[i]]
        other, _ = clips[others[int(rng.integers(len(others)))]]
        gain = 10 ** (rng.uniform(-3, 3) / 20) * np.sqrt(np.mean(wave ** 2) / np.mean(other ** 2))
        first, second = (int(rng.uniform(0, 0.25) * sr) for _ in range(2))
        out = np.zeros(max(first + len(wave), second + len(other)), dtype=np.float32)
        out[first:first + len(wave)] += wave
        out[second:second + len(other)] += gain * other
        rel = paths[i].replace(".wav", "-mix.wav")
        sf.write(folder / rel, out / max(1.0, np.abs(out).max()), sr)
        mixed.append(rel)
    return mixed


def digits():
    """1,797 handwritten digits: ``image`` (PNG, 8x8 upscaled to 64x64 grey), ``audio`` (the
    digit's name spoken over another digit's name by another voice, WAV), ``label`` (0-9),
    ``group`` (the voice of the digit's name)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    def build(folder):
        bunch = load_digits()
        rng = np.random.default_rng(0)
        (folder / "images").mkdir()
        images = []
        for i, pixels in enumerate(bunch.images):
            grey = (255 - pixels * (255 / 16)).clip(0, 255).astype(np.uint8)  # ink dark on white
            rel = f"images/{i:05d}.png"
            Image.fromarray(grey).resize((64, 64), Image.BILINEAR).convert("RGB").save(folder / rel)
            images.append(rel)
        audio, voices = _speak_rows(folder, [DIGIT_NAMES[t] for t in bunch.target], rng)
        audio = _overlay(folder, audio, voices, bunch.target, rng)
        return pd.DataFrame({"image": images, "audio": audio, "label": bunch.target,
                             "group": voices})

    return _cached("digits", build)


def _emoji_entries():
    """Every fully-qualified emoji of emoji-test.txt (the Component group left out):
    DataFrame of char, name, label (group), subgroup, base (codepoints without skin tones)."""
    _require(EMOJI_TEST, "unicode-data")
    rows, group, subgroup = [], None, None
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line.strip() and not line.startswith("#"):
            codes, rest = line.split(";", 1)
            status, comment = rest.split("#", 1)
            if status.strip() != "fully-qualified" or group == "Component":
                continue
            codes = codes.split()
            # the comment reads "<emoji> E<version> <name>"
            name = comment.strip().split(" ", 2)[2]
            rows.append({"char": "".join(chr(int(c, 16)) for c in codes), "name": name,
                         "label": group, "subgroup": subgroup,
                         "base": " ".join(c for c in codes if c not in SKIN_TONES)})
    return pd.DataFrame(rows)


def _emoji_sample(max_per_base=3, n_bases=800, seed=0):
    """Up to ``max_per_base`` variants of ``n_bases`` base emoji drawn at random (seeded)."""
    entries = _emoji_entries()
    rng = np.random.default_rng(seed)
    bases = entries["base"].unique()
    chosen = set(rng.choice(bases, size=min(n_bases, len(bases)), replace=False))
    parts = []
    for base, rows in entries[entries["base"].isin(chosen)].groupby("base", sort=True):
        take = rng.permutation(len(rows))[:max_per_base]
        parts.append(rows.iloc[np.sort(take)])
    return pd.concat(parts, ignore_index=True).rename(columns={"base": "group"})


def emoji():
    """About 1,100 emoji (800 base emoji, up to 3 skin-tone variants each): ``image`` (the Noto
    colour glyph on white, PNG), ``text`` (its CLDR name), ``audio`` (the name spoken),
    ``label`` (the Unicode emoji group, 9 classes), ``group`` (the base emoji)."""
    from PIL import Image, ImageDraw, ImageFont

    def build(folder):
        _require(EMOJI_FONT, "fonts-noto-color-emoji")
        df = _emoji_sample()
        font = ImageFont.truetype(str(EMOJI_FONT), 109)  # the font's one bitmap size
        (folder / "images").mkdir()
        images = []
        for i, char in enumerate(df["char"]):
            glyph = Image.new("RGBA", (136, 128), (255, 255, 255, 0))
            ImageDraw.Draw(glyph).text((0, 0), char, font=font, embedded_color=True)
            canvas = Image.new("RGB", glyph.size, (255, 255, 255))
            canvas.paste(glyph, mask=glyph.getchannel("A"))
            rel = f"images/{i:05d}.png"
            canvas.save(folder / rel)
            images.append(rel)
        audio, _ = _speak_rows(folder, list(df["name"]), np.random.default_rng(1))
        return pd.DataFrame({"image": images, "text": df["name"], "audio": audio,
                             "label": df["label"], "subgroup": df["subgroup"],
                             "group": df["group"]})

    return _cached("emoji", build)


def _wordnet_synsets():
    """Every noun and verb synset: DataFrame of lemma, definition, example (its first quoted
    example, or ""), label (the lexical category)."""
    rows = []
    for pos in ("noun", "verb"):
        path = WORDNET_DIR / f"data.{pos}"
        _require(path, "wordnet-base")
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            fields, gloss = line.split(" | ", 1)
            parts = fields.split()
            lemma = parts[4].replace("_", " ")
            lemma = lemma.split("(")[0]  # adjective markers such as "(a)"
            definition, *examples = [p.strip() for p in gloss.split(";")]
            example = next((e.strip('"') for e in examples if e.startswith('"')), "")
            rows.append({"lemma": lemma, "definition": definition, "example": example,
                         "label": LEXNAMES[int(parts[1])]})
    return pd.DataFrame(rows)


def _wordnet_sample(n_classes=16, per_class=50, seed=0, need_example=False):
    synsets = _wordnet_synsets()
    synsets = synsets[synsets["label"] != "noun.Tops"]  # a handful of top-level concepts
    if need_example:
        synsets = synsets[synsets["example"] != ""]
    counts = synsets["label"].value_counts()
    classes = sorted(counts.index[:n_classes])  # the largest categories
    rng = np.random.default_rng(seed)
    parts = []
    for label in classes:
        rows = synsets[synsets["label"] == label]
        parts.append(rows.iloc[np.sort(rng.choice(len(rows), per_class, replace=False))])
    return pd.concat(parts, ignore_index=True)


def wordnet():
    """800 WordNet synsets, 50 from each of the 16 largest noun and verb lexical categories:
    ``text`` (the definition), ``audio`` (the first lemma spoken: near chance), ``label``
    (the lexical category), ``group`` (the lemma; rows mostly have their own)."""

    def build(folder):
        df = _wordnet_sample()
        audio, _ = _speak_rows(folder, list(df["lemma"]), np.random.default_rng(2))
        return pd.DataFrame({"text": df["definition"], "audio": audio, "label": df["label"],
                             "group": df["lemma"]})

    return _cached("wordnet", build)


def emoji_names():
    """Text only: every fully-qualified emoji's CLDR name (``text``), its Unicode group
    (``label``, 9 classes) and base emoji (``group``: skin-tone variants together);
    about 3,600 rows. Builds nothing on disk."""
    entries = _emoji_entries()
    return pd.DataFrame({"text": entries["name"], "label": entries["label"],
                         "group": entries["base"]})


def wordnet_definitions(n_classes=16, per_class=100, seed=0):
    """Text only: WordNet synsets with an example sentence, ``per_class`` from each of the
    ``n_classes`` largest noun and verb lexical categories: ``text`` (the definition),
    ``label`` (the lexical category), ``query`` (the synset's example sentence, for retrieval:
    find the definition of row i from its example), ``lemma``. Builds nothing on disk."""
    df = _wordnet_sample(n_classes, per_class, seed, need_example=True)
    return pd.DataFrame({"text": df["definition"], "label": df["label"], "query": df["example"],
                         "lemma": df["lemma"]})


BUILDERS = {"digits": digits, "emoji": emoji, "wordnet": wordnet}


if __name__ == "__main__":
    for name, build in BUILDERS.items():
        df = build()
        print(f"{name}: {len(df)} rows, {df['label'].nunique()} classes, "
              f"{df['group'].nunique()} groups, columns {list(df.columns)}")
    for build in (emoji_names, wordnet_definitions):
        df = build()
        name = build.__name__
        print(f"{name}: {len(df)} rows, {df['label'].nunique()} classes")
