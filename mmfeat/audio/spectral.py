"""Spectral shape, energy and pitch-class features, summarised over time."""

from __future__ import annotations

import math

import numpy as np

from .._sklearn_compat import StrOptions
from ..summary import check_stats, stat_names, summarise_runs
from ..validation import invalid_parameter
from . import _frames
from ._base import AudioExtractor

FEATURES = ("centroid", "bandwidth", "rolloff", "zcr", "rms", "contrast", "chroma", "flatness")
_CONTRAST_FMIN = 200.0  # Hz, librosa's default lower edge of the first contrast band


def _contrast_bands(sr: int) -> int:
    """Octave bands of spectral contrast that fit below Nyquist: librosa's 6 at 16 kHz and
    above, fewer at lower rates (librosa refuses bands that cross Nyquist)."""
    return min(6, math.ceil(math.log2(sr / 2 / _CONTRAST_FMIN)))


class SpectralStats(AudioExtractor):
    """Spectral features of each clip, summarised over time.

    The short-time Fourier transform is computed once for a batch of clips and every
    spectral feature is derived from it.

    Parameters
    ----------
    sr : int, default=16000
        Clips are resampled to this rate (Hz) and mixed down to mono.
    features : sequence of str, default=all
        Any of "centroid", "bandwidth", "rolloff" (85 % energy), "zcr" (zero-crossing rate),
        "rms", "contrast" (one row per octave band + 1, 7 at 16 kHz), "chroma" (12 pitch
        classes) and "flatness".
    stats : sequence of str, default=("mean", "std")
        Statistics over time: "mean", "std", "min", "max", "median", and percentiles written
        "p10", "p90" ...
    n_fft : int, default=512
        Window length in samples; shorter clips are zero-padded to it. At most ``sr`` (one
        second) and at most ``duration * sr`` when ``duration`` is given.
    hop_length : int, default=160
        Step between frames in samples; at most ``n_fft``.
    offset : float, default=0.0
        Seconds skipped at the start of each clip.
    duration : float or None, default=None
        If given, each clip is cropped or zero-padded to exactly this many seconds.
    max_duration : float or None, default=600.0
        Never read more than this many seconds of a clip.
    batch_size : int, default=32
    n_jobs : int or None, default=None
        Processes for the feature code (joblib semantics).
    cache : None, False, path or FeatureCache, default=None
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False

    See Also
    --------
    MFCCStats : cepstral coefficients summarised the same way.

    Notes
    -----
    Columns are named ``spectral_centroid_mean``, ``spectral_contrast3_std``,
    ``spectral_chroma07_mean`` ...: feature (and row), statistic. Chroma uses tuning 0
    (A440) rather than estimating it per clip, which is faster and keeps the pitch classes
    of different clips comparable.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfeat.audio import SpectralStats
    >>> tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)
    >>> spectral = SpectralStats(features=("centroid", "chroma"), stats=("mean",), cache=False)
    >>> spectral.fit_transform([tone]).shape
    (1, 13)
    """

    feature_prefix = "spectral"
    _parameter_constraints = {
        **AudioExtractor._parameter_constraints,
        "features": [StrOptions(set(FEATURES)), tuple, list],
    }

    def __init__(self, *, sr=16000, features=FEATURES, stats=("mean", "std"), n_fft=512,
                 hop_length=160, offset=0.0, duration=None, max_duration=600.0, batch_size=32,
                 n_jobs=None, cache=None, on_error="raise", verbose=False):
        self.sr = sr
        self.features = features
        self.stats = stats
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.offset = offset
        self.duration = duration
        self.max_duration = max_duration
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _validate(self):
        super()._validate()
        features = self._feature_list()
        unknown = [f for f in features if f not in FEATURES]
        if not features or unknown or len(set(features)) != len(features):
            raise invalid_parameter(self, "features", "a non-empty sequence of distinct names "
                                    f"among {FEATURES}", self.features)
        if "contrast" in features and self.sr <= 2 * _CONTRAST_FMIN:
            raise invalid_parameter(self, "sr", f"above {2 * _CONTRAST_FMIN:g} Hz with 'contrast' "
                                    "among the features", self.sr)

    def _feature_list(self) -> tuple:
        return (self.features,) if isinstance(self.features, str) else tuple(self.features)

    def _batch_features(self, waves):
        stats = check_stats(self.stats)
        magnitude = _frames.magnitude(waves, self.n_fft, self.hop_length)
        edges = _frames.bounds(waves, self.hop_length)
        # each feature of all clips' frames at once (_frames says how each matches librosa)
        computed = {}  # shared between features: centroid and bandwidth, the power spectrum
        blocks = np.concatenate([self._frames(name, waves, magnitude, edges, computed)
                                 for name in self._feature_list()])
        return summarise_runs(blocks, edges, stats)

    def _frames(self, name, waves, magnitude, edges, computed) -> np.ndarray:
        """Frame-wise values of one feature, shape (rows, total_frames)."""
        sr, n_fft = self.sr, self.n_fft
        if name in ("rms", "chroma", "flatness") and "power" not in computed:
            computed["power"] = magnitude**2
        if name in ("centroid", "bandwidth"):
            if "centroid" not in computed:
                computed["centroid"], computed["bandwidth"] = _frames.centroid_and_bandwidth(
                    magnitude, sr=sr, n_fft=n_fft)
            return computed[name]
        if name == "rolloff":
            return _frames.rolloff(magnitude, sr=sr, n_fft=n_fft)
        if name == "zcr":
            return _frames.zero_crossing_rate(waves, n_fft, self.hop_length)
        if name == "rms":
            return _frames.rms(computed["power"], n_fft=n_fft)
        if name == "contrast":
            return _frames.spectral_contrast(magnitude, edges, sr=sr, n_fft=n_fft,
                                             fmin=_CONTRAST_FMIN, n_bands=_contrast_bands(sr))
        if name == "chroma":
            return _frames.chroma(computed["power"], sr=sr, n_fft=n_fft)
        return _frames.flatness(computed["power"])

    def _feature_suffixes(self):
        rows = []
        for name in self._feature_list():
            if name == "contrast":
                rows += [f"contrast{i}" for i in range(_contrast_bands(self.sr) + 1)]
            elif name == "chroma":
                rows += [f"chroma{i:02d}" for i in range(12)]
            else:
                rows.append(name)
        return stat_names(rows, check_stats(self.stats))
