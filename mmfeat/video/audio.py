"""What is heard: the sound track of a video, through an audio extractor."""

from __future__ import annotations

from ..optional import require
from ._base import WrapsExtractor
from ._decode import read_sound
from ._files import check_video_path


class VideoAudio(WrapsExtractor):
    """The sound track of each video, decoded to mono at the audio extractor's rate and
    described by it.

    Parameters
    ----------
    extractor : mmfeat audio extractor or None, default=None
        Describes the sound track; None is :class:`~mmfeat.audio.MFCCStats`. It receives the
        track as a ``(waveform, sr)`` pair at its own ``sr``, so its ``offset``, ``duration``
        and ``max_duration`` apply as to any clip. Its parameters are tunable as
        ``extractor__n_mfcc`` ..., and its fingerprint is part of the cache key.
    max_duration : float or None, default=600.0
        Never decode more than this many seconds of sound.
    timeout : float or None, default=60.0
        Seconds a video may take to open and decode; a row that takes longer fails with a
        cause saying so (a stream that never ends, or one far too slow to decode). None: no
        bound.
    batch_size : int, default=16
        Videos per batch.
    n_jobs : int or None, default=None
        Processes across batches of videos (joblib semantics).
    cache : None, False, path or FeatureCache, default=None
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False

    Attributes
    ----------
    extractor_ : Extractor
        The fitted clone of ``extractor``.

    See Also
    --------
    VideoFrames, MotionStats : what is seen and how it moves.

    Notes
    -----
    Needs PyAV (``pip install "mmfeat[video]"``), which ships FFmpeg in its wheels; checked in
    ``fit``. The first sound track is used, mixed down to mono. A video without a sound
    track is a missing value for this modality: its row fails with the cause
    ``no sound track`` (NaN under ``on_error="nan"``, and imputed by the fusion estimators'
    ``handle_missing``). Columns are named ``sound_{inner name}``: ``sound_mfcc_03_mean``.

    Examples
    --------
    >>> from mmfeat.audio import MFCCStats
    >>> from mmfeat.video import VideoAudio
    >>> sound = VideoAudio(MFCCStats(n_mfcc=13, deltas=0))
    >>> sound.fit([]).get_feature_names_out()[:2].tolist()
    ['sound_mfcc_00_mean', 'sound_mfcc_00_std']
    """

    feature_prefix = "sound"
    inner_modality = "audio"

    def __init__(self, extractor=None, *, max_duration=600.0, timeout=60.0, batch_size=16,
                 n_jobs=None, cache=None, on_error="raise", verbose=False):
        self.extractor = extractor
        self.max_duration = max_duration
        self.timeout = timeout
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    # max_frames is a bound on frames, which this extractor never decodes
    _parameter_constraints = {k: v for k, v in WrapsExtractor._parameter_constraints.items()
                              if k != "max_frames"}

    def _default_extractor(self):
        from ..audio import MFCCStats

        return MFCCStats()

    def _validate(self):
        super()._validate()
        require("av", who="VideoAudio (sound tracks)", extra="video")

    def _fit(self, items):
        def training_tracks():
            tracks = []
            for item in items:
                try:
                    tracks.append(self._read_track(item))
                except Exception:  # a bad training video only lacks from what is learned
                    continue
            return tracks

        self._fit_inner(training_tracks)

    def _read_track(self, item):
        sr = self._inner_sr()
        path = check_video_path(item)
        return read_sound(path, sr=sr, max_duration=self.max_duration, timeout=self.timeout), sr

    def _inner_sr(self) -> int:
        return int(self._current().sr)

    def _load_item(self, item):
        return self.extractor_._load_item(self._read_track(item))

    def _features(self, loaded):
        return self._inner_features(loaded)

    def _feature_suffixes(self):
        return [str(name) for name in self.extractor_.get_feature_names_out()]
