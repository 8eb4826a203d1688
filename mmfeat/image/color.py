"""Colour histograms in HSV space."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from .._sklearn_compat import Interval
from ..base import Extractor
from ..io import DEFAULT_MAX_PIXELS, load_image
from ..validation import check_int_tuple


class ColorHistogram(Extractor):
    """Joint HSV colour histogram of each image, normalised to sum to one.

    The hue bins are turned by half a bin so that the first one is centred on red: red lies at
    both ends of the hue circle, and would otherwise be split between the first and last bins.
    Colours are those of the pixels; the alpha channel of an RGBA image is dropped.

    Parameters
    ----------
    bins : tuple of 3 ints, default=(8, 8, 8)
        Bins for hue, saturation and value, each from 1 to 256.
    size : int >= 1 or None, default=224
        Images are resized so that their longer side is ``size`` pixels before counting
        (faster, and makes the histogram independent of resolution); None keeps them as they are.
    max_pixels : int or None, default=89_478_485
        Larger images are refused before decoding (decompression-bomb guard); None switches
        the guard off.
    batch_size : int, default=64
    n_jobs : int or None, default=None
        Processes for the feature code (joblib semantics).
    cache : None, False, path or FeatureCache, default=None
        Where features are cached; None uses the global setting (see :func:`mmfeat.set_config`).
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False

    Examples
    --------
    >>> import numpy as np
    >>> from mmfeat.image import ColorHistogram
    >>> red = np.zeros((32, 32, 3), np.uint8); red[..., 0] = 255
    >>> ColorHistogram(bins=(4, 2, 2), cache=False).fit_transform([red]).shape
    (1, 16)
    """

    modality = "image"
    feature_prefix = "hsv"
    algorithm_version = "2"  # 2: hue bins centred on red
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "bins": [tuple, list],
        "size": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, bins=(8, 8, 8), *, size=224, max_pixels=DEFAULT_MAX_PIXELS, batch_size=64,
                 n_jobs=None, cache=None, on_error="raise", verbose=False):
        self.bins = bins
        self.size = size
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _validate(self):
        check_int_tuple(self, "bins", 3, 1, 256)

    def _load_item(self, item):
        import cv2

        image = load_image(item, max_pixels=self.max_pixels)
        if self.size:
            h, w = image.shape[:2]
            scale = self.size / max(h, w)
            if scale < 1:
                image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                   interpolation=cv2.INTER_AREA)
        return image

    def _features(self, loaded):
        import cv2

        h, s, v = map(int, self.bins)
        out = np.empty((len(loaded), h * s * v), np.float32)
        for i, image in enumerate(loaded):
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            # count in half-width hue bins, then pair them up shifted by one: the last half-bin
            # and the first make bin 0, centred on red (hue 0), at no cost per pixel
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [2 * h, s, v], [0, 180, 0, 256, 0, 256])
            hist = np.roll(hist, 1, axis=0).reshape(h, 2, s, v).sum(axis=1)
            out[i] = hist.ravel() / max(hist.sum(), 1.0)
        return out

    def _feature_suffixes(self):
        h, s, v = map(int, self.bins)
        return [f"h{i}_s{j}_v{k}" for i in range(h) for j in range(s) for k in range(v)]
