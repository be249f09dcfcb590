"""Sphinx configuration of the skcgcnn documentation.

Build with ``make docs`` or ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors). The API reference comes from the numpydoc docstrings; ``examples/`` is shown as a
sphinx-gallery whose scripts are *not executed* during the build (they need data and minutes of
training).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the checkout, also when it is not installed

import skcgcnn  # noqa: E402

# -- project ---------------------------------------------------------------------------------
project = "skcgcnn"
author = "skcgcnn developers"
copyright = "skcgcnn developers, MIT License"  # noqa: A001 - Sphinx's name
release = skcgcnn.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5"]
# No intersphinx: the build must work offline (CI, air-gapped clusters) and without warnings.

# -- autodoc / autosummary / numpydoc --------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False  # each object is documented once, in its own module
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False  # members are listed by the autosummary class template
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- MyST (Markdown pages) -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# -- sphinx-gallery --------------------------------------------------------------------------
# The examples train networks on real data (minutes each), so the build shows their code and
# text without running them: ``plot_gallery=False`` and a filename pattern that matches nothing.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "plot_gallery": "False",
    "filename_pattern": r"^$",
    "ignore_pattern": r"(__init__|make_demo_subset)\.py$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_signature": False,
}

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skcgcnn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []
html_show_sourcelink = False

# Third-party deprecation chatter must not fail a ``-W`` build.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
os.environ.setdefault("MPLBACKEND", "Agg")
autosummary_ignore_module_all = False  # a module's public API is its __all__
autodoc_inherit_docstrings = False  # skorch's own docstrings stay on skorch's site
