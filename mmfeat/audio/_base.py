"""What the audio extractors share: loading clips and checking the common parameters."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .._sklearn_compat import Interval
from ..base import Extractor
from ..io import load_audio
from ..summary import check_stats
from ..validation import invalid_parameter
from ._frames import chunks

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_POSITIVE_SECONDS = Interval(Real, 0, None, closed="neither")


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
    ``duration`` and ``max_duration``, and ``_batch_features(waves)`` -> one 1-D vector per clip.
    """

    modality = "audio"
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "sr": [_POSITIVE_INT],
        "n_fft": [Interval(Integral, 2, None, closed="left")],
        "hop_length": [_POSITIVE_INT],
        "offset": [Interval(Real, 0, None, closed="left")],
        "duration": [_POSITIVE_SECONDS, None],
        "max_duration": [_POSITIVE_SECONDS, None],
        "stats": [str, tuple, list],
    }

    def _validate(self):
        check_stats(self.stats, self)
        # A window longer than a second is no longer short-time analysis, and one longer than
        # the clip would describe padding; hops longer than the window skip samples unseen.
        if self.n_fft > self.sr:
            raise invalid_parameter(self, "n_fft",
                                    f"at most sr={self.sr} samples (a window of 1 s)", self.n_fft)
        if self.duration is not None and self.n_fft > self.duration * self.sr:
            raise invalid_parameter(
                self, "n_fft", f"at most duration * sr = {self.duration} * {self.sr} = "
                f"{int(self.duration * self.sr)} samples", self.n_fft)
        if self.hop_length > self.n_fft:
            raise invalid_parameter(self, "hop_length", f"at most n_fft={self.n_fft} samples",
                                    self.hop_length)

    def _load_item(self, item):
        wave = load_audio(item, sr=self.sr, offset=self.offset, duration=self.duration,
                          max_duration=self.max_duration)
        if wave.size < self.n_fft:
            wave = np.pad(wave, (0, self.n_fft - wave.size))
        return wave

    def _features(self, loaded):
        # The matrix products here are small (a filterbank times a batch's frames): BLAS
        # threads only add synchronisation, which costs 4x on a busy machine. Parallelism
        # belongs across clips (n_jobs), where joblib also gives each worker 1 thread.
        # (Threads of one process extracting at once may restore each other's limit out of
        # order and leave BLAS at 1 thread: slower numpy elsewhere, never wrong numbers.)
        with _blas_controller().limit(limits=1, user_api="blas"):
            rows = []
            for run in chunks(loaded, self.hop_length):
                rows += self._batch_features(loaded[run])
            return np.stack(rows)

    def _batch_features(self, waves: list) -> list:
        """One 1-D feature vector per clip of ``waves`` (their frames fit in memory at once)."""
        raise NotImplementedError
