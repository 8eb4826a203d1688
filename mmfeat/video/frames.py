"""What is seen: frames sampled from a video, run through an image extractor, summarised over
time."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from ..io import DEFAULT_MAX_PIXELS
from ..optional import require
from ..summary import check_stats, stat_names, summarise
from ._base import WrapsExtractor
from ._decode import VideoReader, no_frames_error, sample_indices, warn_partial
from ._files import check_video_path


class VideoFrames(WrapsExtractor):
    """Frames sampled from each video, described by any mmfeat image extractor, and
    summarised over time into one fixed-length vector.

    Parameters
    ----------
    extractor : mmfeat image extractor or None, default=None
        Describes each frame; None is :class:`~mmfeat.image.CNNEmbedder` (EfficientNet-Lite0).
        Its parameters are tunable as ``extractor__image_size`` ..., and its fingerprint is
        part of the cache key. Frames of every video of a batch go through it together,
        ``extractor.batch_size`` at a time (a CNN sees frames of many videos in one forward
        pass). Its ``cache``, ``on_error`` and ``n_jobs`` are not used: one vector per video is
        cached, under this extractor's own settings.
    n_frames : int, default=8
        Frames per video (fewer when the video has fewer).
    sampling : "uniform" or float, default="uniform"
        ``"uniform"``: ``n_frames`` spread evenly (the middle frame of each of ``n_frames``
        equal segments); a number: one frame every so many seconds from the start, at most
        ``n_frames``.
    seek : {"exact", "keyframes"}, default="exact"
        ``"exact"``: each sampled frame itself (a seek to the keyframe before it, then decoding
        forward to it). ``"keyframes"``: an approximation that decodes keyframes only: the
        keyframe at or before each sampled frame, each keyframe once (so fewer frames where
        keyframes are further apart than the samples; no warning counts the frames then).
        Several times faster on long clips with distant keyframes; part of the cache key,
        so the two never share vectors.
    stats : sequence of str, default=("mean", "std")
        Statistics over the frames: "mean", "std", "min", "max", "median", "p10" ...
    max_duration : float or None, default=None
        Only the first ``max_duration`` seconds are sampled. Frames are reached by seeking,
        so even without a bound a long file is never decoded whole.
    max_frames : int or None, default=None
        Only the first ``max_frames`` frames are sampled.
    max_pixels : int or None, default=89_478_485
        A video whose frames have more pixels than this is refused before a frame is decoded
        (its header is read first, and the decoder will not allocate a larger frame: a header
        can lie, and a stream can change size midway). None: no limit. The wrapped
        extractor's own ``max_pixels`` then applies to each decoded frame.
    timeout : float or None, default=60.0
        Seconds a video may take to open and decode; a row that takes longer fails with a
        cause saying so (a stream that never ends, or one far too slow to decode). None: no
        bound.
    batch_size : int, default=8
        Videos per batch.
    n_jobs : int or None, default=None
        Processes across batches of videos, for extractors without a model (joblib
        semantics); a model-backed extractor decodes the next batch in a background thread
        while the model runs.
    cache : None, False, path or FeatureCache, default=None
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False

    Attributes
    ----------
    extractor_ : Extractor
        The fitted clone of ``extractor``.
    n_features_out_ : int
        ``extractor_.n_features_out_ * len(stats)``.

    See Also
    --------
    MotionStats : how things move, from dense optical flow.
    VideoAudio : the sound track, through an audio extractor.

    Notes
    -----
    Items are paths of video files in any container and codec OpenCV's bundled FFmpeg reads
    (MP4, MOV, MKV, WebM, AVI ...). Columns are named ``frames_{inner name}_{statistic}``:
    ``frames_cnn_0042_mean``, ``frames_hsv_h0_s1_v2_std``. Frames that do not decode (a corrupt
    frame, a file that ends before its header says) are left out with a
    :class:`PartialDecodeWarning` giving the count; a video with no decodable frame is a
    failed row. An extractor that learns state (``ORBBagOfWords``) is fitted on the sampled
    frames of the training videos.

    Examples
    --------
    >>> from mmfeat.image import ColorHistogram
    >>> from mmfeat.video import VideoFrames
    >>> frames = VideoFrames(ColorHistogram(bins=(4, 2, 2)), n_frames=4, stats=("mean", "max"))
    >>> frames.set_params(extractor__bins=(8, 2, 2)).extractor.bins
    (8, 2, 2)
    """

    feature_prefix = "frames"
    inner_modality = "image"
    _parameter_constraints = {
        **WrapsExtractor._parameter_constraints,
        "n_frames": [Interval(Integral, 1, None, closed="left")],
        "sampling": [StrOptions({"uniform"}), Interval(Real, 0, None, closed="neither")],
        "seek": [StrOptions({"exact", "keyframes"})],
        "stats": [str, tuple, list],
    }

    def __init__(self, extractor=None, *, n_frames=8, sampling="uniform", seek="exact",
                 stats=("mean", "std"), max_duration=None, max_frames=None,
                 max_pixels=DEFAULT_MAX_PIXELS, timeout=60.0, batch_size=8, n_jobs=None, cache=None,
                 on_error="raise", verbose=False):
        self.extractor = extractor
        self.n_frames = n_frames
        self.sampling = sampling
        self.seek = seek
        self.stats = stats
        self.max_duration = max_duration
        self.max_frames = max_frames
        self.max_pixels = max_pixels
        self.timeout = timeout
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _default_extractor(self):
        from ..image import CNNEmbedder

        return CNNEmbedder()

    def _validate(self):
        super()._validate()
        check_stats(self.stats, self)
        require("av", who="VideoFrames", extra="video")

    def _fit(self, items):
        def training_frames():
            frames = []
            for item in items:
                try:
                    frames += self._read_frames(item)
                except Exception:  # a bad training video only lacks from the codebook
                    continue
            return frames

        self._fit_inner(training_frames)

    def _read_frames(self, item, convert=None) -> list:
        path = check_video_path(item)
        with VideoReader(path, max_duration=self.max_duration, max_frames=self.max_frames,
                         max_pixels=self.max_pixels, timeout=self.timeout) as video:
            wanted = sample_indices(video.n_frames, video.fps, self.n_frames, self.sampling)
            if self.seek == "exact":
                frames = video.read(wanted, convert)
            else:
                frames = video.read_keyframes(wanted, convert)
        if not frames:
            raise no_frames_error(video.n_frames)
        if self.seek == "exact":
            warn_partial(path, len(frames), len(wanted))
        return [frames[i] for i in sorted(frames)]

    def _load_item(self, item):
        # each frame becomes what the image extractor keeps (shrunk) as soon as it is decoded
        return self._read_frames(item, self.extractor_._load_item)

    def _features(self, loaded):
        counts = [len(frames) for frames in loaded]
        per_frame = self._inner_features([frame for frames in loaded for frame in frames])
        stats = check_stats(self.stats)
        bounds = np.cumsum([0] + counts)
        return np.stack([summarise(per_frame[a:b].T, stats)
                         for a, b in zip(bounds[:-1], bounds[1:])])

    def _feature_suffixes(self):
        inner = self.extractor_.get_feature_names_out()
        return stat_names(inner, check_stats(self.stats))
