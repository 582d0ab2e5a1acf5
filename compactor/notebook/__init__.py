"""Exploring in Jupyter: compare encoding profiles on samples, preview what one does."""

from ._compare import compare
from ._comparison import Comparison
from ._open import open_scene
from ._preview import Preview, preview
from ._profiles import parse_profile

__all__ = ["Comparison", "Preview", "compare", "open_scene", "parse_profile", "preview"]
