"""
Late fusion with groups
=======================

One model per modality, combined by a meta-learner on out-of-fold predictions. When rows come
in groups (speakers, sessions, patients), a cue that holds inside a group may not carry over
to a new one: pass ``groups=`` so that the out-of-fold predictions never learn from and
predict the same group, and evaluate with whole groups held out.
"""

# %%
# In this demo data every group has its own voice: the audio's pitch is shifted per group.
import tempfile

import matplotlib.pyplot as plt
from sklearn.model_selection import GroupShuffleSplit

from mmfeat.datasets import demo_extractors, make_multimodal
from mmfeat.fusion import LateFusionClassifier

df = make_multimodal(n_samples=240, n_groups=6, data_dir=tempfile.mkdtemp(), random_state=0)
train_rows, test_rows = next(GroupShuffleSplit(1, test_size=2, random_state=0)
                             .split(df, groups=df.group))
train, test = df.iloc[train_rows], df.iloc[test_rows]
print("held-out groups:", sorted(test.group.unique()))

# %%
# Fit with the training rows' groups; score on the two groups never seen.
model = LateFusionClassifier(demo_extractors(quick=True), cv=3, random_state=0)
model.fit(train, train.label, groups=train.group)
print(f"accuracy on unseen groups: {model.score(test, test.label):.3f}")

# %%
# What each modality scores on its own (out of fold) and what the meta-learner makes of it.
report = model.modality_report_
print(report.to_string(index=False))

fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh(report["modality"], report["oof_score"])
ax.set_xlabel("out-of-fold score, by group")
ax.set_xlim(0, 1)
fig.tight_layout()
