"""
Which fusion? A comparison report and its plots
===============================================

:func:`mmfeat.compare` fits every single modality, early fusion (with and without cross-modal
interactions) and late fusion (stacking, gated stacking, mean and product rule) under the same
folds, and writes a report: tables and the plots shown below.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import mmfeat
from mmfeat.datasets import demo_extractors, make_multimodal

df = make_multimodal(n_samples=160, data_dir=tempfile.mkdtemp(), random_state=0)
report_dir = Path(tempfile.mkdtemp())
result = mmfeat.compare(df, df.label, modalities=demo_extractors(quick=True), cv=3,
                        report_dir=report_dir, random_state=0)
print(result.table[["model", "balanced_accuracy", "macro_f1", "fit_s"]].to_string(index=False))
print("best:", result.best)

# %%
# The report folder holds the tables (CSV, Markdown) and three plots.
print(sorted(p.name for p in report_dir.iterdir()))

for name in ["scores.png", "contributions.png", "confusion.png"]:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.imshow(plt.imread(report_dir / name))
    ax.set_axis_off()
    ax.set_title(name)
    fig.tight_layout()
