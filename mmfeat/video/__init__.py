"""Video features: what is seen (frames through an image extractor), how it moves (dense
optical flow) and what is heard (the sound track through an audio extractor).

Items are paths of video files. Frames are read with OpenCV's bundled FFmpeg; the sound track
with PyAV (``pip install "mmfeat[video]"``), imported only when :class:`VideoAudio` is fitted.
"""

from ._decode import PartialDecodeWarning
from .audio import VideoAudio
from .frames import VideoFrames
from .motion import MotionStats

__all__ = ["MotionStats", "PartialDecodeWarning", "VideoAudio", "VideoFrames"]
