"""Fusing modalities: early (features side by side) and late (one model per modality, stacked).

- :func:`make_early_fusion` builds a ``ColumnTransformer`` of one :class:`ModalityBlock` per
  modality (optionally followed by cross-modal :class:`ModalityInteractions` and an estimator);
- :class:`LateFusionClassifier` and :class:`LateFusionRegressor` fit one model per modality
  and combine their out-of-fold predictions with a meta-learner or a fixed rule.

Both let rows miss modalities (``handle_missing=True``).
"""

from .blocks import ModalityBlock
from .early import make_early_fusion
from .interactions import ModalityInteractions
from .late import LateFusionClassifier, LateFusionRegressor, is_late_fusion
from .tuning import TunedLogisticRegression

__all__ = ["LateFusionClassifier", "LateFusionRegressor", "ModalityBlock", "ModalityInteractions",
           "TunedLogisticRegression", "is_late_fusion", "make_early_fusion"]
