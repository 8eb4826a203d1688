"""
Robustness: a modality removed or corrupted
===========================================

:func:`mmfeat.robustness.robustness_report` scores a fitted model on held-out rows with each
modality removed (its column set to None) and corrupted at a few levels: images blurred,
noised or partly hidden, sounds with white noise at an SNR in dB, texts with words dropped.
This is the run behind the excerpt in the user guide's robustness section.
"""

# %%
# 200 demo rows (seed 0), split 120 to fit and 80 held out, stratified, with seed 0.
import tempfile

from sklearn.model_selection import train_test_split

from mmfeat.datasets import demo_extractors, make_multimodal
from mmfeat.fusion import LateFusionClassifier
from mmfeat.robustness import plot_robustness, robustness_report

df = make_multimodal(200, data_dir=tempfile.mkdtemp(), random_state=0)
train, test = train_test_split(df, train_size=120, stratify=df["label"], random_state=0)

model = LateFusionClassifier(demo_extractors(quick=True)).fit(train, train["label"])
report = robustness_report(model, test, test["label"])  # modalities read from the model
print(report.round(3).to_string(index=False))

# %%
# One panel per corruption: the score as the level rises, against the model's clean score.
import matplotlib.pyplot as plt  # noqa: E402

path = plot_robustness(report, tempfile.mkdtemp() + "/robustness.png")
fig, ax = plt.subplots(figsize=(8, 4))
ax.imshow(plt.imread(path))
ax.set_axis_off()
fig.tight_layout()
