"""Sphinx configuration of mmfeat's documentation: ``make docs`` builds it into docs/_build/html."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this tree's mmfeat, installed or not
# The gallery runs its examples offline, as the tests do, and quietly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import mmfeat  # noqa: E402

project = "mmfeat"
author = "mmfeat contributors"
copyright = "mmfeat contributors"
release = version = mmfeat.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "examples/README.txt"]
root_doc = "index"

# MyST: heading anchors so pages can link to sections (``[text](cache.md#the-feature-cache)``).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False  # autosummary lists them; numpydoc would list them twice
numpydoc_class_members_toctree = False
# A docstring's prose mentions names freely; only explicit :class:/:func: roles are links.
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example when the docs build
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    "matplotlib_animations": False,
}



def _skip_routing_setters(app, what, name, obj, skip, options):
    # scikit-learn generates set_fit_request & co. on every estimator; their docstrings are
    # scikit-learn's (with links into its own docs) and say nothing about mmfeat.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_routing_setters)


html_theme = "alabaster"
html_title = f"mmfeat {release}"
html_theme_options = {
    "description": "Image, text, audio and video features for scikit-learn",
    "fixed_sidebar": True,
}
