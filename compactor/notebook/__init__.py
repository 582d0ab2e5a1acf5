"""Exploring in Jupyter: compare encoding profiles on samples, preview what one does."""

from .explore import Comparison, Preview, compare, parse_profile, preview

__all__ = ["Comparison", "Preview", "compare", "parse_profile", "preview"]
