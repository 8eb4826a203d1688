"""MFCCs and their deltas, summarised over time."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .._sklearn_compat import Interval
from ..summary import check_stats, stat_names, summarise_runs
from ..validation import invalid_parameter
from . import _frames
from ._base import AudioExtractor


class MFCCStats(AudioExtractor):
    """Mel-frequency cepstral coefficients (and their deltas) summarised over time.

    Each clip gives one fixed-length vector: for every coefficient of every block
    (the MFCCs, then the first and second order deltas if asked for) the chosen statistics
    over all frames.

    Parameters
    ----------
    n_mfcc : int, default=20
        Number of coefficients; at most ``n_mels``.
    sr : int, default=16000
        Clips are resampled to this rate (Hz) and mixed down to mono.
    deltas : {0, 1, 2}, default=1
        Orders of delta features added after the coefficients.
    stats : sequence of str, default=("mean", "std")
        Statistics over time: "mean", "std", "min", "max", "median", and percentiles written
        "p10", "p90" ...
    n_fft : int, default=512
        Window length in samples (32 ms at 16 kHz); shorter clips are zero-padded to it. At
        most ``sr`` (one second) and at most ``duration * sr`` when ``duration`` is given.
    hop_length : int, default=160
        Step between frames in samples (10 ms at 16 kHz); at most ``n_fft``.
    n_mels : int, default=40
        Mel bands the coefficients are computed from.
    offset : float, default=0.0
        Seconds skipped at the start of each clip.
    duration : float or None, default=None
        If given, each clip is cropped or zero-padded to exactly this many seconds.
    max_duration : float or None, default=600.0
        Never read more than this many seconds of a clip (bounds memory on long files).
    batch_size : int, default=32
    n_jobs : int or None, default=None
        Processes for the feature code (joblib semantics).
    cache : None, False, path or FeatureCache, default=None
        Where features are cached; None uses the global setting (see :func:`mmfeat.set_config`).
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False

    Attributes
    ----------
    n_features_out_ : int
        ``n_mfcc * (1 + deltas) * len(stats)``.

    See Also
    --------
    SpectralStats : centroid, bandwidth, contrast, chroma ... summarised the same way.

    Notes
    -----
    Columns are named ``mfcc_03_mean``, ``mfcc_d1_03_std`` ...: block, coefficient,
    statistic. Items are paths (WAV, FLAC, OGG ... anything libsndfile reads) or
    ``(waveform, sr)`` tuples.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfeat.audio import MFCCStats
    >>> tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)
    >>> mfcc = MFCCStats(n_mfcc=13, deltas=1, stats=("mean", "p90"), cache=False)
    >>> mfcc.fit_transform([tone]).shape
    (1, 52)
    >>> mfcc.get_feature_names_out()[:2].tolist()
    ['mfcc_00_mean', 'mfcc_00_p90']
    """

    feature_prefix = "mfcc"
    _parameter_constraints = {
        **AudioExtractor._parameter_constraints,
        "n_mfcc": [Interval(Integral, 1, None, closed="left")],
        "deltas": [Interval(Integral, 0, 2, closed="both")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_mfcc=20, *, sr=16000, deltas=1, stats=("mean", "std"), n_fft=512,
                 hop_length=160, n_mels=40, offset=0.0, duration=None, max_duration=600.0,
                 batch_size=32, n_jobs=None, cache=None, on_error="raise", verbose=False):
        self.n_mfcc = n_mfcc
        self.sr = sr
        self.deltas = deltas
        self.stats = stats
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
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
        if self.n_mfcc > self.n_mels:
            raise invalid_parameter(self, "n_mfcc", f"at most n_mels={self.n_mels}", self.n_mfcc)

    def _batch_features(self, waves):
        mel = _frames.mel_filterbank(self.sr, self.n_fft, self.n_mels)
        power = _frames.magnitude(waves, self.n_fft, self.hop_length) ** 2
        edges = _frames.bounds(waves, self.hop_length)
        log_mel = _frames.power_to_db(mel @ power, edges)
        mfcc = _frames.dct_matrix(self.n_mfcc, self.n_mels) @ log_mel
        blocks = np.concatenate([mfcc] + [_frames.deltas(mfcc, edges, order)
                                          for order in range(1, self.deltas + 1)])
        stats = check_stats(self.stats)
        return summarise_runs(blocks, edges, stats)

    def _feature_suffixes(self):
        coefficients = [f"{i:02d}" for i in range(self.n_mfcc)]
        rows = coefficients + [f"d{order}_{c}" for order in range(1, self.deltas + 1)
                               for c in coefficients]
        return stat_names(rows, check_stats(self.stats))
