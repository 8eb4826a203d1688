"""mmfeat: image, text and audio features for scikit-learn, cached per item, fused early or late.

Importing mmfeat is light: torch and sentence-transformers load only when a model is first used.
"""

from .config import config_context, get_config, set_config
from .errors import CacheWarning, ExtractionError, ExtractionWarning, collect_errors
from .introspect import package_version
from .manifest import read_manifest
from .modelfile import ModelVersionWarning, load_model, save_model

__version__ = package_version()

__all__ = [
    "CacheWarning",
    "compare",
    "ExtractionError",
    "ExtractionWarning",
    "ModelVersionWarning",
    "__version__",
    "collect_errors",
    "config_context",
    "get_config",
    "load_model",
    "read_manifest",
    "save_model",
    "set_config",
]


def __getattr__(name):
    # ``mmfeat.compare`` loads scikit-learn's model zoo: only when first used.
    if name == "compare":
        from .comparison import compare

        return compare
    raise AttributeError(f"module 'mmfeat' has no attribute {name!r}")
