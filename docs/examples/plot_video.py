"""
Video: what is seen, how it moves, what is heard
================================================

A column of video files becomes three modalities: frames through an image extractor
(:class:`mmfeat.video.VideoFrames`), dense optical flow (:class:`mmfeat.video.MotionStats`) and
the sound track through an audio extractor (:class:`mmfeat.video.VideoAudio`).
"""

# %%
# The demo's clips: a disc whose hue, motion and tone show the class in 60% of the rows.
import tempfile

from sklearn.model_selection import cross_val_score

from mmfeat.audio import MFCCStats
from mmfeat.datasets import make_multimodal
from mmfeat.fusion import LateFusionClassifier
from mmfeat.image import ColorHistogram
from mmfeat.video import MotionStats, VideoAudio, VideoFrames

df = make_multimodal(n_samples=80, video=True, data_dir=tempfile.mkdtemp(), random_state=0)
print(df[["video", "label"]].head(3))

# %%
modalities = {
    "frames": ("video", VideoFrames(ColorHistogram(bins=(12, 4, 4)), n_frames=4)),
    "motion": ("video", MotionStats(n_pairs=4, size=64)),
    "sound": ("video", VideoAudio(MFCCStats(n_mfcc=20))),
}
model = LateFusionClassifier(modalities, cv=3, random_state=0)
scores = cross_val_score(model, df, df.label, cv=3)
print(f"3-fold accuracy of late fusion over the three video modalities: {scores.mean():.3f}")

# %%
model.fit(df, df.label)
print(model.modality_report_.to_string(index=False))
