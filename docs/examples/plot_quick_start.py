"""
Quick start: three modalities, one scikit-learn pipeline
========================================================

Images, texts and sounds, each described by an mmfeat extractor inside a plain
``ColumnTransformer``, standardised, then a logistic regression. The extractors' columns have
very different scales (a CNN embedding, unit-length sentence vectors, MFCC statistics in
decibels), so the ``StandardScaler`` is what lets the solver converge in a few iterations.
"""

# %%
# Demo data: a PNG, a text and a WAV per row, each showing the class 60% of the time.
import tempfile

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mmfeat
from mmfeat.audio import MFCCStats
from mmfeat.datasets import make_multimodal
from mmfeat.image import CNNEmbedder
from mmfeat.text import SentenceEmbedder

data_dir = tempfile.mkdtemp()
make_multimodal(n_samples=160, data_dir=data_dir, random_state=0)
df = mmfeat.read_manifest(f"{data_dir}/manifest.csv")
print(df[["image", "text", "audio", "label"]].head(3).to_string())

# %%
# One extractor per column, scaled, then a linear model.
features = ColumnTransformer([
    ("image", CNNEmbedder(), "image"),
    ("text", SentenceEmbedder(), "text"),
    ("audio", MFCCStats(n_mfcc=20), "audio"),
])
model = make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=1000))

train, test = train_test_split(df, test_size=0.25, stratify=df.label, random_state=0)
model.fit(train, train.label)
print(f"held-out accuracy: {model.score(test, test.label):.3f}")

# %%
# Every column has a name, and the features of each item are now in the cache: fitting again
# (a grid search, a refit) computes nothing.
names = model[0].get_feature_names_out()
print(len(names), "features, e.g.", names[:2], names[-2:])
