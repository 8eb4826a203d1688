"""What one synthetic sample looks, reads and sounds like: the classes' themes and the
drawing of an image, a text and a sound that show a class's cue (or none)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
IMAGE_SIZE = 128


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



def _write_video(path, rng, cue):
    from ._video import MOTIONS, write_clip

    if cue is None:
        write_clip(path, rng)
    else:
        write_clip(path, rng, motion=MOTIONS[cue], hue=_THEMES[cue].hue,
                   tone_hz=_THEMES[cue].tone_hz)
