"""Robustness of a fitted multimodal model: its score when a modality is removed (set to
missing) or corrupted at predict time, per modality and level -- what MultiBench measures for
deep models, for any scikit-learn model that reads a DataFrame of modality columns.

- :func:`robustness_report` scores the model under every condition and returns a table;
- :func:`plot_robustness` draws that table (matplotlib, ``pip install "mmfeat[report]"``);
- :func:`corrupt_image` (blur, noise, occlusion), :func:`corrupt_audio` (white noise at an
  SNR) and :func:`corrupt_text` (word dropout) are the corruptions, one item each.
"""

from .corrupt import IMAGE_CORRUPTIONS, corrupt_audio, corrupt_image, corrupt_text
from .plot import plot_robustness
from .report import DEFAULT_CORRUPTIONS, corruption_kind, robustness_report

__all__ = ["DEFAULT_CORRUPTIONS", "IMAGE_CORRUPTIONS", "corrupt_audio", "corrupt_image",
           "corrupt_text", "corruption_kind", "plot_robustness", "robustness_report"]
