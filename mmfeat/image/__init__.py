"""Image features: colour and gradient histograms, ORB visual words, CNN embeddings.

Every extractor takes a 1-D sequence of images given as paths, encoded bytes or RGB arrays.
Importing this module does not import torch; :class:`CNNEmbedder` imports it on first use.
"""

from .cnn import CNNEmbedder
from .color import ColorHistogram
from .gradient import GradientHistogram
from .orb import ORBBagOfWords

__all__ = ["CNNEmbedder", "ColorHistogram", "GradientHistogram", "ORBBagOfWords"]
