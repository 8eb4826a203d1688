"""How things move: dense optical flow on frame pairs at a small fixed size, summarised over
time."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from ..errors import ItemError
from ..io import DEFAULT_MAX_PIXELS
from ..optional import require
from ..summary import check_stats, stat_names, summarise
from ..validation import invalid_parameter
from ._base import VideoExtractor
from ._decode import VideoReader, no_frames_error, warn_partial
from ._files import check_video_path


class MotionStats(VideoExtractor):
    """Motion descriptors from dense optical flow: speed and direction histograms of frame
    pairs, summarised over time.

    ``n_pairs`` pairs of frames ``step`` frames apart are taken evenly over the video,
    converted to grey, resized so that their longer side is ``size`` pixels, and the optical
    flow between the two frames of each pair is computed at every pixel. Speeds are measured in
    frame sides per second (the flow in pixels, divided by ``size`` and by the time between the
    two frames), so that they do not depend on the resolution or the frame rate. Each pair gives:

    - ``speed``: the mean speed over all pixels; ``moving``: the fraction of pixels at least
      as fast as ``speed_edges[0]``; ``dx``, ``dy``: the mean flow (x rightwards, y downwards);
    - ``speed_b0`` ...: the fraction of pixels in each speed band (below ``speed_edges[0]``,
      between consecutive edges, above the last);
    - ``orient_000`` ...: the direction histogram of the moving pixels weighted by their speed
      and normalised to sum to one (all zero when nothing moves); bin ``orient_090`` is centred
      on motion straight down (image coordinates).

    Each of these is then summarised over the pairs with ``stats``.

    Parameters
    ----------
    n_pairs : int, default=16
        Frame pairs per video (fewer when the video is shorter).
    step : int, default=1
        Frames between the two frames of a pair.
    size : int, default=96
        Longer side, in pixels, of the frames the flow is computed on (larger frames are
        shrunk, smaller ones enlarged, so that speeds do not depend on the resolution).
    method : {"farneback", "dis"}, default="farneback"
        OpenCV's Farnebäck flow, or DIS (faster, preset "fast").
    speed_edges : tuple of float, default=(0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
        Increasing edges of the speed bands, in frame sides per second.
    orientation_bins : int, default=8
        Direction bins over 360 degrees, the first centred on motion to the right.
    stats : sequence of str, default=("mean", "std", "max")
        Statistics over the pairs: "mean", "std", "min", "max", "median", "p10" ...
    max_duration : float or None, default=None
        Only the first ``max_duration`` seconds are used; frames are reached by seeking, so a
        long file is never decoded whole.
    max_frames : int or None, default=None
        Only the first ``max_frames`` frames are used.
    max_pixels : int or None, default=89_478_485
        A video whose frames have more pixels than this is refused before a frame is decoded
        (its header is read first, and the decoder will not allocate a larger frame). None: no
        limit. Frames are shrunk to ``size`` as each is decoded.
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

    See Also
    --------
    VideoFrames : what is seen, through an image extractor.

    Notes
    -----
    A video with a single decodable frame has no motion to measure and is a failed row; pairs
    whose frames do not decode are left out with a :class:`PartialDecodeWarning`.

    Examples
    --------
    >>> from mmfeat.video import MotionStats
    >>> motion = MotionStats(speed_edges=(0.1, 1.0), orientation_bins=4, stats=("mean",))
    >>> motion.fit([]).get_feature_names_out().tolist()[:6]  # doctest: +NORMALIZE_WHITESPACE
    ['motion_speed_mean', 'motion_moving_mean', 'motion_dx_mean', 'motion_dy_mean',
     'motion_speed_b0_mean', 'motion_speed_b1_mean']
    """

    feature_prefix = "motion"
    _parameter_constraints = {
        **VideoExtractor._parameter_constraints,
        "n_pairs": [Interval(Integral, 1, None, closed="left")],
        "step": [Interval(Integral, 1, None, closed="left")],
        "size": [Interval(Integral, 16, None, closed="left")],
        "method": [StrOptions({"farneback", "dis"})],
        "speed_edges": [tuple, list],
        "orientation_bins": [Interval(Integral, 1, 360, closed="both")],
        "stats": [str, tuple, list],
    }

    def __init__(self, n_pairs=16, *, step=1, size=96, method="farneback",
                 speed_edges=(0.02, 0.05, 0.1, 0.2, 0.5, 1.0), orientation_bins=8,
                 stats=("mean", "std", "max"), max_duration=None, max_frames=None,
                 max_pixels=DEFAULT_MAX_PIXELS, timeout=60.0, batch_size=16, n_jobs=None,
                 cache=None, on_error="raise", verbose=False):
        self.n_pairs = n_pairs
        self.step = step
        self.size = size
        self.method = method
        self.speed_edges = speed_edges
        self.orientation_bins = orientation_bins
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

    def _validate(self):
        require("av", who="MotionStats", extra="video")
        check_stats(self.stats, self)
        edges = self.speed_edges
        ok = isinstance(edges, (tuple, list)) and len(edges) >= 1 and all(
            isinstance(e, Real) and not isinstance(e, bool) and np.isfinite(e) and e > 0
            for e in edges
        ) and all(a < b for a, b in zip(edges[:-1], edges[1:]))
        if not ok:
            raise invalid_parameter(self, "speed_edges", "a non-empty tuple of increasing positive "
                                    "finite numbers (frame sides per second)", edges)

    def _load_item(self, item):
        import cv2

        path = check_video_path(item)
        with VideoReader(path, max_duration=self.max_duration, max_frames=self.max_frames,
                         max_pixels=self.max_pixels, timeout=self.timeout) as video:
            n_starts = video.n_frames - self.step
            if n_starts <= 0:
                if video.n_frames == 0:
                    raise no_frames_error(0)
                raise _too_short(video.n_frames, self.step)
            starts = sorted({int((k + 0.5) * n_starts / self.n_pairs) for k in range(self.n_pairs)})
            # each frame is shrunk to grey as soon as it is decoded: at most one full frame at a
            # time
            small = video.read(starts + [s + self.step for s in starts],
                               lambda rgb: self._resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)))
            fps = video.fps
        if not small:
            raise no_frames_error(video.n_frames)
        pairs = [(small[s], small[s + self.step]) for s in starts
                 if s in small and s + self.step in small]
        if not pairs:
            raise _too_short(len(small), self.step, decodable=True)
        warn_partial(path, len(pairs), len(starts), "frame pairs")
        # flow in pixels -> frame sides per second
        scale = fps / self.step / max(pairs[0][0].shape)
        return pairs, scale

    def _resize(self, gray):
        """To ``size`` on the longer side, enlarging too: the flow's windows are in pixels, so
        only a fixed working size makes speeds independent of the resolution."""
        import cv2

        h, w = gray.shape
        factor = self.size / max(h, w)
        if factor == 1:
            return gray
        return cv2.resize(gray, (max(1, round(w * factor)), max(1, round(h * factor))),
                          interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)

    def _features(self, loaded):
        import cv2

        dis = (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if self.method == "dis"
               else None)
        stats = check_stats(self.stats)
        out = []
        for pairs, scale in loaded:
            rows = []
            for prev, nxt in pairs:
                if dis is not None:
                    flow = dis.calc(prev, nxt, None)
                else:
                    flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=3,
                                                        winsize=15, iterations=3, poly_n=5,
                                                        poly_sigma=1.2, flags=0)
                rows.append(self._pair_features(flow * scale))
            out.append(summarise(np.stack(rows, axis=1), stats))
        return np.stack(out)

    def _pair_features(self, flow):
        import cv2

        fx, fy = flow[..., 0], flow[..., 1]
        speed, angle = cv2.cartToPolar(fx, fy, angleInDegrees=True)
        edges = [float(e) for e in self.speed_edges]
        moving = speed >= edges[0]
        bands = np.histogram(speed, bins=[0.0, *edges, np.inf])[0] / speed.size
        width = 360.0 / self.orientation_bins
        # shifted by half a bin so that bin 0 is centred on rightward motion
        turned = (angle[moving] + width / 2) % 360.0
        directions = np.histogram(turned, bins=self.orientation_bins, range=(0.0, 360.0),
                                  weights=speed[moving])[0]
        total = directions.sum()
        directions = directions / total if total > 0 else directions
        return np.concatenate([[speed.mean(), moving.mean(), fx.mean(), fy.mean()], bands,
                               directions])

    def _feature_suffixes(self):
        width = 360 / self.orientation_bins
        rows = ["speed", "moving", "dx", "dy"]
        rows += [f"speed_b{i}" for i in range(len(self.speed_edges) + 1)]
        rows += [f"orient_{round(k * width):03d}" for k in range(self.orientation_bins)]
        return stat_names(rows, check_stats(self.stats))


def _too_short(n_frames: int, step: int, decodable: bool = False) -> ItemError:
    what = "decodable frame" if decodable else "frame"
    return ItemError(f"{n_frames} {what}{'s' if n_frames != 1 else ''}: motion needs two frames "
                     f"{step} apart")
