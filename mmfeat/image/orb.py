"""Bag of visual words over ORB keypoint descriptors."""

from __future__ import annotations

import hashlib
from numbers import Integral

import numpy as np

from .._sklearn_compat import Interval
from ..base import Extractor
from ..io import DEFAULT_MAX_PIXELS, load_image

#: At most this many descriptors, drawn at random, are clustered in ``fit``.
MAX_FIT_DESCRIPTORS = 100_000


class ORBBagOfWords(Extractor):
    """Histogram of visual words: ORB descriptors of each image assigned to a learned codebook.

    ``fit`` finds up to ``n_keypoints`` ORB keypoints in each training image and clusters their
    descriptors into ``n_words`` visual words with :class:`~sklearn.cluster.MiniBatchKMeans`.
    ``transform`` assigns each descriptor of an image to its nearest word and returns the
    normalised word counts. An image in which ORB finds no keypoint (a flat or tiny image)
    gets a histogram of zeros.

    Parameters
    ----------
    n_words : int, default=64
        Size of the codebook: the number of output features.
    n_keypoints : int, default=500
        At most this many keypoints per image (the strongest by FAST/Harris score).
    size : int or None, default=256
        Images are resized (up or down) so that their longer side is ``size`` pixels, which
        puts keypoints of every image on a comparable scale; None keeps them as they are.
    random_state : int, RandomState or None, default=None
        Seeds the clustering and the sampling of descriptors in ``fit``.
    max_pixels : int or None, default=89_478_485
        Larger images are refused before decoding (decompression-bomb guard); None switches
        the guard off.
    batch_size : int, default=64
    n_jobs : int or None, default=None
        Processes for the feature code (joblib semantics).
    cache : None, False, path or FeatureCache, default=None
        Where features are cached; None uses the global setting (see :func:`mmfeat.set_config`).
    on_error : {"raise", "nan"}, default="raise"
        Also applies to the images given to ``fit``: under ``"nan"`` unreadable ones are
        skipped with one :class:`~mmfeat.ExtractionWarning`.
    verbose : bool, default=False

    Attributes
    ----------
    codebook_ : ndarray of shape (n_words, 256), float32
        The visual words, in the space of the descriptors' 256 bits (0 or 1), where the squared
        Euclidean distance equals the Hamming distance ORB descriptors are meant to be compared
        with.
    n_descriptors_ : int
        Descriptors the codebook was learned from.

    See Also
    --------
    GradientHistogram : gradient orientations on a fixed grid.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfeat.image import ORBBagOfWords
    >>> rng = np.random.default_rng(0)
    >>> noise = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
    >>> flat = np.full((96, 96, 3), 128, np.uint8)
    >>> bow = ORBBagOfWords(n_words=8, random_state=0, cache=False).fit(noise)
    >>> bow.transform(noise + [flat]).shape
    (4, 8)
    >>> float(bow.transform([flat]).sum())  # no keypoints on a flat image
    0.0
    """

    modality = "image"
    feature_prefix = "orb"
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "n_words": [Interval(Integral, 1, None, closed="left")],
        "n_keypoints": [Interval(Integral, 1, None, closed="left")],
        "size": [Interval(Integral, 32, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, n_words=64, *, n_keypoints=500, size=256, random_state=None,
                 max_pixels=DEFAULT_MAX_PIXELS, batch_size=64, n_jobs=None, cache=None,
                 on_error="raise", verbose=False):
        self.n_words = n_words
        self.n_keypoints = n_keypoints
        self.size = size
        self.random_state = random_state
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_item(self, item):
        import cv2

        gray = cv2.cvtColor(load_image(item, max_pixels=self.max_pixels), cv2.COLOR_RGB2GRAY)
        if self.size:
            h, w = gray.shape
            scale = self.size / max(h, w)
            if scale != 1:
                gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                                  interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return gray

    def _bits(self, orb, gray):
        """The image's descriptors as rows of 256 bits (float32), possibly zero rows."""
        _, descriptors = orb.detectAndCompute(gray, None)
        if descriptors is None:
            return np.empty((0, 256), np.float32)
        return np.unpackbits(descriptors, axis=1).astype(np.float32)

    def _fit(self, items):
        import cv2
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.utils import check_random_state
        from threadpoolctl import threadpool_limits

        orb = cv2.ORB_create(nfeatures=int(self.n_keypoints))
        bits, failed = [], {}
        for row, item in enumerate(items):  # one at a time: only descriptors are kept in memory
            batch = self.load_items([item])
            if batch.errors:
                failed[row] = batch.errors[0]
            else:
                bits.append(self._bits(orb, batch.loaded[0]))
        self.handle_failures(items, failed)
        bits = np.concatenate(bits) if bits else np.empty((0, 256), np.float32)
        if len(bits) < self.n_words:
            raise ValueError(
                f"ORB found {len(bits)} keypoint descriptors in the {len(items)} training images, "
                f"fewer than n_words={self.n_words}. Fit on more (or more textured) images, or "
                "lower n_words."
            )
        rng = check_random_state(self.random_state)
        if len(bits) > MAX_FIT_DESCRIPTORS:
            bits = bits[rng.choice(len(bits), MAX_FIT_DESCRIPTORS, replace=False)]
        kmeans = MiniBatchKMeans(n_clusters=int(self.n_words), batch_size=2048, random_state=rng)
        # One thread: on batches this small, BLAS/OpenMP threads cost more than they save, and
        # on a busy machine (parallel tests, other jobs) they made this fit 10x slower.
        with threadpool_limits(1):
            self.codebook_ = kmeans.fit(bits).cluster_centers_.astype(np.float32)
        self.n_descriptors_ = len(bits)

    def _state_digest(self):
        codebook = getattr(self, "codebook_", None)
        if codebook is None:
            return ""
        return hashlib.blake2b(np.ascontiguousarray(codebook).tobytes(), digest_size=16).hexdigest()

    def _features(self, loaded):
        import cv2

        orb = cv2.ORB_create(nfeatures=int(self.n_keypoints))
        codebook = self.codebook_
        word_norms = (codebook**2).sum(axis=1)
        out = np.zeros((len(loaded), len(codebook)), np.float32)
        for i, gray in enumerate(loaded):
            bits = self._bits(orb, gray)
            if len(bits):
                # nearest word by squared distance; |bits|^2 is the same for every word
                words = np.argmin(word_norms - 2 * bits @ codebook.T, axis=1)
                out[i] = np.bincount(words, minlength=len(codebook)) / len(bits)
        return out

    def _feature_suffixes(self):
        return [f"w{i:03d}" for i in range(int(self.n_words))]
