"""What the video extractors share: their items, bounds, and wrapping an image or audio
extractor (``VideoFrames``, ``VideoAudio``)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import clone

from .._sklearn_compat import HasMethods, Interval
from ..base import Extractor
from ..validation import invalid_parameter


class VideoExtractor(Extractor):
    """Base of the video extractors: items are paths of video files.

    Videos are keyed by the content of their file like images (``item_kind = "image"``);
    :func:`~mmfeat.video._files.check_video_path` refuses bytes and arrays when an item is
    loaded.
    """

    modality = "video"
    item_kind = "image"
    # The time a row may take decides only whether it fails (and failures are never cached).
    runtime_params = Extractor.runtime_params | {"timeout"}
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "max_duration": [Interval(Real, 0, None, closed="neither"), None],
        "max_frames": [Interval(Integral, 1, None, closed="left"), None],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
    }


class WrapsExtractor(VideoExtractor):
    """A video extractor that hands what it decodes to an mmfeat extractor of another modality.

    The given ``extractor`` is cloned and fitted in ``fit`` (``extractor_``); its parameters
    are tunable as ``extractor__name`` (scikit-learn's nested parameters) and its fingerprint
    (class, parameters, model, fitted state) is part of every cache key. Only its loading and
    feature code is used: caching, the error policy and batching stay with the video extractor.
    """

    #: The modality the wrapped extractor must have.
    inner_modality = ""
    # The wrapped extractor enters the key through its own fingerprint (_state_digest), which
    # leaves out its runtime parameters (batch_size, device ...), not through its repr.
    runtime_params = VideoExtractor.runtime_params | {"extractor"}
    _parameter_constraints = {
        **VideoExtractor._parameter_constraints,
        "extractor": [HasMethods(["fit", "transform", "get_feature_names_out"]), None],
    }

    def _default_extractor(self) -> Extractor:
        raise NotImplementedError

    def _inner(self) -> Extractor:
        """The wrapped extractor as given (the default one for None), not fitted."""
        return self._default_extractor() if self.extractor is None else self.extractor

    def _current(self) -> Extractor:
        """The fitted wrapped extractor, or, before ``fit``, the one given."""
        fitted = getattr(self, "extractor_", None)
        return self._inner() if fitted is None else fitted

    @property
    def uses_model(self):
        return self._current().uses_model

    def _validate(self):
        inner = self._inner()
        if not isinstance(inner, Extractor) or inner.modality != self.inner_modality:
            raise invalid_parameter(self, "extractor", f"an mmfeat {self.inner_modality} extractor "
                                    f"(from mmfeat.{self.inner_modality}) or None", self.extractor)

    def _fit_inner(self, training_items):
        """Fit a clone of the wrapped extractor: on ``training_items()`` (decoded frames or
        sound tracks) when it learns state that changes its output (a codebook: it then has a
        state digest), else on nothing, so that the training videos are not decoded for naught."""
        inner = clone(self._inner())
        learns = type(inner)._state_digest is not Extractor._state_digest
        inner.fit(training_items() if learns else [])
        self.extractor_ = inner

    def _state_digest(self):
        return self._current().fingerprint()

    def _model_identity(self):
        return self._current()._model_identity()

    def _get_model(self):
        # the wrapped extractor's own model, shared with every other user of it in this process
        return self.extractor_._get_model()

    def _cache_label(self):
        # "VideoFrames(n_frames=4)" -> "VideoFrames(n_frames=4, extractor=ColorHistogram(...))"
        head = super()._cache_label()[:-1]
        sep = "" if head.endswith("(") else ", "
        return f"{head}{sep}extractor={self.extractor_._cache_label()})"

    def _inner_features(self, items) -> np.ndarray:
        """The wrapped extractor's features for its loaded items, ``batch_size`` at a time."""
        bs = self.extractor_.batch_size
        return np.concatenate([self.extractor_._features(items[i : i + bs])
                               for i in range(0, len(items), bs)])
