"""Audio extractors: frame-wise features summarised over time into fixed-length vectors.

Items are paths (WAV, FLAC, OGG ...) or ``(waveform, sr)`` tuples; librosa is imported only
when features are first computed.
"""

from .mfcc import MFCCStats
from .spectral import SpectralStats

__all__ = ["MFCCStats", "SpectralStats"]
