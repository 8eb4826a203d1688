"""Text extractors. Importing this package is light: sentence-transformers (and torch) load
only when a model is first needed."""

from .sentence import SentenceEmbedder

__all__ = ["SentenceEmbedder"]
