"""Short synthetic video clips for the demo data (:func:`mmfeat.datasets.make_multimodal` with
``video=True``): a disc moving over a grey background, with a tone as its sound track.

A clip can carry up to three cues, each given or left neutral on its own: the disc's colour
(what is seen), the way it moves (how it moves) and the pitch of its tone (what is heard). The
frames and the sound are drawn with one random generator, so the same generator state gives
byte-identical files; they are encoded with PyAV (MPEG-4 Part 2 video and AAC sound in MP4).
"""

from __future__ import annotations

import fractions

import numpy as np

from ..optional import import_optional

__all__ = ["MOTIONS", "SIZE", "SAMPLE_RATE", "write_clip"]

SIZE = 64
SAMPLE_RATE = 16_000
_FRAME_RATES = (10, 12, 15)
#: The tone of a clip without a pitch cue: a low mains-like hum, the same for every class.
_NEUTRAL_HZ = 120.0

#: The ways a disc can move, the i-th the cue of the demo data's i-th class. The first four
#: (the default classes) differ most: up, round in a circle, side to side, right.
MOTIONS = ("rise", "orbit", "sway", "drift", "fall", "dash", "tumble", "bob")


def _path(motion: str | None, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """The disc's centre at each time (seconds), in frame sides, ``(len(times), 2)`` as (x, y).

    Straight moves start far enough back to stay in the frame for 2 s; speed, phase and start
    vary a little per clip. Without a motion cue the disc stands still or wanders at random
    (a random walk, every direction alike).
    """
    speed = rng.uniform(0.8, 1.2)
    phase = rng.uniform(0, 2 * np.pi)
    jitter = rng.uniform(-0.08, 0.08, size=2)
    t = times[:, None]
    if motion is None:
        if rng.random() < 0.5:
            return np.broadcast_to(rng.uniform(0.3, 0.7, size=2), (len(times), 2)).copy()
        steps = rng.normal(0, 0.025, size=(len(times), 2))
        return (rng.uniform(0.35, 0.65, size=2) + np.cumsum(steps, axis=0)).clip(0.1, 0.9)
    straight = {  # start (x, y) and velocity in sides per second
        "rise": ((0.5, 0.85), (0.0, -0.3)),
        "drift": ((0.15, 0.5), (0.3, 0.0)),
        "fall": ((0.5, 0.15), (0.0, 0.2)),
        "dash": ((0.85, 0.5), (-0.35, 0.0)),
        "tumble": ((0.8, 0.2), (-0.2, 0.2)),
    }
    if motion in straight:
        start, velocity = (np.asarray(v) for v in straight[motion])
        return start + jitter + speed * velocity * t
    centre = np.array([0.5, 0.5]) + jitter
    angle = 2 * np.pi * speed * times + phase
    if motion == "orbit":  # half a turn per second, radius 0.22
        wave = np.stack([np.cos(0.5 * angle), np.sin(0.5 * angle)], axis=1) * 0.22
    elif motion == "sway":  # side to side once a second
        wave = np.stack([np.sin(angle) * 0.25, np.zeros_like(times)], axis=1)
    elif motion == "bob":  # up and down once a second
        wave = np.stack([np.zeros_like(times), np.sin(angle) * 0.22], axis=1)
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS} or None")
    return centre + wave


def _frames(rng: np.random.Generator, motion: str | None, hue: int | None, n_frames: int, fps: int):
    """RGB ``uint8`` frames: a grey gradient, the disc (the hue's colour, or grey), sensor noise."""
    import cv2

    if hue is None:  # a grey disc
        g = int(rng.integers(40, 216))
        color = (g, g, g)
    else:
        hsv = np.uint8([[[(hue + int(rng.integers(-3, 4))) % 180, rng.integers(170, 256),
                          rng.integers(170, 256)]]])
        color = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    # The background is clearly lighter or darker than the disc: optical flow sees grey
    # levels only, and a red disc on a grey of its own luminance would not be seen to move.
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    level = luma + (-1 if luma > 128 else 1) * rng.uniform(60, 90)
    slope = rng.uniform(-20, 20, size=2)
    ramp = np.linspace(-0.5, 0.5, SIZE)
    background = (level + slope[0] * ramp[None, :] + slope[1] * ramp[:, None]).clip(0, 255)
    background = background.astype(np.uint8)
    background = np.repeat(background[..., None], 3, axis=2)
    radius = int(rng.integers(6, 10))
    centres = _path(motion, rng, np.arange(n_frames) / fps) * SIZE
    noise_sd = rng.uniform(1, 4)
    frames = []
    for x, y in centres:
        frame = background.copy()
        cv2.circle(frame, (int(round(x)), int(round(y))), radius, color, -1, cv2.LINE_AA)
        # The same noise on every channel, so that it adds no hue.
        noise = rng.normal(0, noise_sd, size=(SIZE, SIZE, 1))
        frames.append((frame + noise).clip(0, 255).astype(np.uint8))
    return frames


def _sound(rng: np.random.Generator, tone_hz: float | None, n_samples: int) -> np.ndarray:
    """Mono float32: the tone (a slightly detuned steady note with a slow tremolo and a second
    harmonic) or the neutral hum, over white noise, at a random level."""
    t = np.arange(n_samples) / SAMPLE_RATE
    if tone_hz is None:
        f0, level = _NEUTRAL_HZ * rng.uniform(0.98, 1.02), rng.uniform(0.1, 0.3)
    else:
        f0, level = tone_hz * rng.uniform(0.96, 1.04), 1.0
    tremolo = 1 - 0.3 * (1 + np.sin(2 * np.pi * rng.uniform(1, 4) * t
                                    + rng.uniform(0, 2 * np.pi))) / 2
    wave = level * tremolo * (np.sin(2 * np.pi * f0 * t)
                              + rng.uniform(0, 0.4) * np.sin(4 * np.pi * f0 * t))
    wave = wave / max(1.0, np.abs(wave).max()) + rng.normal(0, rng.uniform(0.02, 0.1), n_samples)
    return (wave * rng.uniform(0.2, 0.6)).clip(-1, 1).astype(np.float32)


def write_clip(path, rng: np.random.Generator, *, motion: str | None = None, hue: int | None = None,
               tone_hz: float | None = None) -> None:
    """Write a 64x64 MP4 clip of 1-2 s at 10, 12 or 15 fps, with a 16 kHz mono AAC sound track.

    Parameters
    ----------
    path : str or path-like
        The file written (MP4; overwritten).
    rng : numpy.random.Generator
        Every random choice (length, frame rate, path, colour, noise, sound) comes from it.
    motion : str or None
        One of :data:`MOTIONS`; None: the disc stands still or wanders at random.
    hue : int or None
        OpenCV hue (0-179) of the disc; None: a grey disc.
    tone_hz : float or None
        Pitch of the tone; None: a faint neutral hum, the same for every class.
    """
    av = import_optional("av", who="make_multimodal(video=True)", extra="video")
    fps = int(_FRAME_RATES[rng.integers(len(_FRAME_RATES))])
    seconds = rng.uniform(1.0, 2.0)
    n_frames = int(round(seconds * fps))
    frames = _frames(rng, motion, hue, n_frames, fps)
    sound = _sound(rng, tone_hz, int(round(n_frames / fps * SAMPLE_RATE)))
    # bitexact: no encoder version strings, so the bytes depend only on the content.
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        video = container.add_stream("mpeg4", rate=fps, options={"flags": "+bitexact"})
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.bit_rate = 400_000
        video.thread_count = 1  # one thread: the same bytes on every machine
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono",
                                     options={"flags": "+bitexact"})
        audio.thread_count = 1
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        block = audio.codec_context.frame_size or 1024
        for start in range(0, len(sound), block):
            samples = np.ascontiguousarray(sound[None, start : start + block])
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
