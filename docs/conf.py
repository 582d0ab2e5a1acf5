"""Sphinx configuration for compactor's documentation.

Why Sphinx: the docstrings are already reStructuredText with Sphinx roles (:func:, :class:,
:data:, :mod:), and the libraries compactor builds on (dask, distributed, rasterio) document
with Sphinx too. The pages are Markdown (myst-parser), so they read on GitHub as well; the
API reference is generated from the package surfaces' docstrings (autodoc).

The build needs no network: intersphinx is deliberately not enabled. ``make docs`` builds
with warnings as errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compactor import __version__  # noqa: E402

project = "compactor"
author = "compactor contributors"
copyright = "compactor contributors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: GitHub-style heading anchors, so `page.md#a-heading` links work on GitHub and here.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc: each package's surface (its __all__, every name, documented or not), in source order,
# the type hints in the description.
autodoc_default_options = {
    "members": True,
    "imported-members": True,
    "undoc-members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "description"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"compactor {__version__}"

# Without intersphinx, a builtin type in a signature (``bytes``) has no target of its own and
# Sphinx's fuzzy lookup finds two attributes named ``bytes`` (Probe.bytes, Preview.bytes) and
# calls it ambiguous. Those lookups are the only ``ref.python`` warnings the build has.
suppress_warnings = ["ref.python"]
