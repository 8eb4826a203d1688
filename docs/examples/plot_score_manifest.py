"""
Scoring a manifest, with broken rows
====================================

Save a fitted model, then score a table of any size with :func:`mmfeat.scoring.score` (the
``mmfeat score`` command): in chunks, into a folder of Parquet parts, resumably. A bad item costs
its own row only, and the ``error`` column says why.
"""

# %%
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression

import mmfeat
from mmfeat.audio import MFCCStats
from mmfeat.datasets import make_multimodal
from mmfeat.fusion import make_early_fusion
from mmfeat.image import ColorHistogram
from mmfeat.scoring import score

work = Path(tempfile.mkdtemp())
df = make_multimodal(n_samples=120, data_dir=work / "data", random_state=0)
model = make_early_fusion(image=("image", ColorHistogram()), audio=("audio", MFCCStats()),
                          estimator=LogisticRegression(max_iter=1000)).fit(df, df.label)
model_file = mmfeat.save_model(model, work / "model.joblib")

# %%
# A manifest to score: the same files, one of them missing and one not an image at all.
manifest = df[["id", "image", "audio"]].copy()
manifest.loc[3, "image"] = str(work / "gone.png")
(work / "notes.png").write_text("not a picture")
manifest.loc[5, "image"] = str(work / "notes.png")
manifest.to_parquet(work / "manifest.parquet")

summary = score(model_file, work / "manifest.parquet", work / "scores",
                proba=True, chunk_size=50, progress=False)
print(mmfeat.scoring.format_summary(summary))

# %%
# One row per input row, in order; failed rows keep their place with their cause.
scores = pd.read_parquet(work / "scores")
print(scores[["id", "prediction", "error"]].head(7).to_string(index=False))
