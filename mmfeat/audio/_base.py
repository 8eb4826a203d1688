"""What the audio extractors share: loading clips and checking the common parameters."""

from __future__ import annotations

import numbers

import numpy as np

from ..base import Extractor
from ..io import load_audio
from .stats import check_stats


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Got {name}={value!r}, expected a positive integer.")


def _check_seconds(name: str, value, *, optional: bool, positive: bool) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        expected = "a positive number of seconds" if positive else "a number of seconds >= 0"
        raise ValueError(f"Got {name}={value!r}, expected {expected}{' or None' if optional else ''}.")


_BLAS = []  # this process's threadpoolctl controller: listing the libraries costs ~2 ms a time


def _blas_controller():
    if not _BLAS:
        import librosa  # noqa: F401  loads scipy's BLAS too, so that the controller sees it
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


class AudioExtractor(Extractor):
    """Base of the audio extractors: clips are loaded as mono float32 at ``sr`` Hz, cropped to
    ``offset`` / ``duration`` / ``max_duration``, and clips shorter than one analysis window
    (``n_fft`` samples) are zero-padded to it so that they still give features.

    Subclasses define the parameters ``sr``, ``stats``, ``n_fft``, ``hop_length``, ``offset``,
    ``duration`` and ``max_duration``, and ``_clip_features(wave)`` -> 1-D vector.
    """

    modality = "audio"

    def _validate(self):
        for name in ("sr", "n_fft", "hop_length"):
            check_positive_int(name, getattr(self, name))
        _check_seconds("offset", self.offset, optional=False, positive=False)
        _check_seconds("duration", self.duration, optional=True, positive=True)
        _check_seconds("max_duration", self.max_duration, optional=True, positive=True)
        check_stats(self.stats)

    def _load_item(self, item):
        wave = load_audio(item, sr=self.sr, offset=self.offset, duration=self.duration,
                          max_duration=self.max_duration)
        if wave.size < self.n_fft:
            wave = np.pad(wave, (0, self.n_fft - wave.size))
        return wave

    def _features(self, loaded):
        # The matrix products here are tiny (a mel or chroma filterbank times one clip's
        # frames): BLAS threads only add synchronisation, which costs 4x on a busy machine.
        # Parallelism belongs across clips (n_jobs), where joblib also gives each worker 1 thread.
        # (Threads of one process extracting at once may restore each other's limit out of
        # order and leave BLAS at 1 thread: slower numpy elsewhere, never wrong numbers.)
        with _blas_controller().limit(limits=1, user_api="blas"):
            return np.stack([self._clip_features(wave) for wave in loaded])

    def _clip_features(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError
