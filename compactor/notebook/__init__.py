"""Exploring in Jupyter: compare encoding profiles on samples, preview what one does."""

from ._explore import Comparison, Preview, compare, open_scene, parse_profile, preview

__all__ = ["Comparison", "Preview", "compare", "open_scene", "parse_profile", "preview"]
