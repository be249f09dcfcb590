"""Sphinx configuration of the skcgcnn documentation.

Build with ``make docs`` or ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors). The API reference comes from the numpydoc docstrings; ``examples/`` is shown as a
sphinx-gallery whose scripts are *not executed* during the build (they need data and minutes of
training).
"""

from __future__ import annotations

import os
import re
import shutil
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
# The gallery is made from a copy of ``examples/*.py`` staged under ``_build`` (so the scripts
# keep plain docstrings and ``examples/data`` stays out): the first line of each script's
# docstring becomes the page title.
GALLERY_SOURCE = DOCS / "_build" / "gallery_src"
GALLERY_HEADER = """Examples
========

Runnable scripts that use skcgcnn on real data. They are shown here, **not run** while this
documentation is built: they train networks for minutes, and some read datasets you download
yourself. Run one from the repository root with ``python examples/<name>.py --help``.
"""


def _titled(source: str) -> str:
    """The script with an rst title underline under the first line of its docstring."""
    match = re.match(r'(\s*(?:#[^\n]*\n\s*)*[rR]?""")([^\n]+)\n', source)
    if match is None:
        return source
    title = match.group(2).strip().rstrip(".")
    rest = source[match.end():]
    if re.match(r"\s*[=\-~^]{3,}\n", rest):  # already an rst title
        return source
    return f"{match.group(1)}{title}\n{'=' * len(title)}\n{rest}"


def _stage_examples() -> Path:
    if GALLERY_SOURCE.exists():
        shutil.rmtree(GALLERY_SOURCE)
    GALLERY_SOURCE.mkdir(parents=True)
    (GALLERY_SOURCE / "GALLERY_HEADER.rst").write_text(GALLERY_HEADER, encoding="utf-8")
    for script in sorted((ROOT / "examples").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        (GALLERY_SOURCE / script.name).write_text(_titled(text), encoding="utf-8")
    return GALLERY_SOURCE


sphinx_gallery_conf = {
    "examples_dirs": str(_stage_examples()),
    "gallery_dirs": "auto_examples",
    "plot_gallery": "False",
    "filename_pattern": r"^$",
    "ignore_pattern": r"__init__\.py$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_signature": False,
    "write_computation_times": False,  # no sg_execution_times.rst in the source tree
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


def _skip_member(app, what, name, obj, skip, options):  # noqa: ANN001, ANN202
    """Document a class's members defined in skcgcnn (its own and those of skcgcnn's private
    base classes); leave out what it inherits from skorch, scikit-learn, matminer, torch or
    Python, and the ``set_*_request`` methods scikit-learn generates for metadata routing."""
    if re.fullmatch(r"set_\w+_request", name):
        return True
    if what == "class":
        target = obj.fget if isinstance(obj, property) else obj
        module = getattr(target, "__module__", None)
        if callable(target) or isinstance(obj, property):
            if not (module or "").startswith("skcgcnn"):
                return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-skip-member", _skip_member)
