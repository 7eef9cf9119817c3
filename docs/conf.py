"""Sphinx configuration of the bigmodels documentation site (Sphinx + MyST-NB, as flax
and optax build theirs).

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html
    python -m http.server -d docs/_build/html 8000

The notebooks are copied in from `notebooks/` at build time. They are stored without
outputs, so the site shows their code and prose only, unless
`BIGMODELS_EXECUTED_NOTEBOOKS=<dir>` names a directory of executed copies (CI's notebook
test writes them there, in smoke mode) or `BIGMODELS_DOCS_EXECUTE=1` asks the build to run
them (full runs unless `BIGMODELS_NOTEBOOK_SMOKE=1`).
"""

import os
import pathlib
import re
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "bigmodels"
author = "the bigmodels authors"
copyright = "2026, the bigmodels authors"

extensions = [
    "myst_nb",                      # Markdown pages and .ipynb notebooks (brings myst_parser)
    "autodoc2",                     # the API reference, read from the source (no imports)
    "sphinx_copybutton",
]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "bigmodels"

# Markdown: `$...$` maths, `:::` fences, and anchors for headings so pages can link
# to sections (`page.md#section`).
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# API reference: one page per module, generated from the docstrings by static analysis
# (nothing is imported, so JAX need not start). The docstrings are Markdown-style prose
# (`code`, indented command blocks), so they are parsed as MyST, not reST.
autodoc2_packages = [{"path": "../bigmodels", "exclude_files": ["__main__.py"]}]
autodoc2_render_plugin = "myst"
autodoc2_docstring_parser_regexes = [(r".*", "myst")]
autodoc2_hidden_objects = ["private", "inherited", "dunder"]
autodoc2_module_all_regexes = []

nb_execution_mode = "force" if os.environ.get("BIGMODELS_DOCS_EXECUTE") else "off"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_merge_streams = True
# An untrained model's sample (the smoke runs') holds arbitrary bytes that Pygments
# cannot lex as terminal output; the text is shown plain, which is right for it.
suppress_warnings = ["misc.highlighting_failure"]


def _copy_notebooks() -> None:
    """docs/notebooks/<name>.ipynb from notebooks/, or from the executed copies."""
    executed = os.environ.get("BIGMODELS_EXECUTED_NOTEBOOKS", "")
    target = DOCS / "notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        ran = pathlib.Path(executed) / source.name if executed else None
        shutil.copyfile(ran if ran is not None and ran.is_file() else source,
                        target / source.name)


_copy_notebooks()

# Pages that include a repository file outside docs/, and the links to those files
# (from docs/ pages: ../path; from the included README: path) that point to the pages.
REPO_FILE_PAGES = {"launch/README.md": "launch.md", "benchmarks/RESULTS.md": "results.md"}


def _link_repo_files(app, docname, content):
    for path, page in REPO_FILE_PAGES.items():
        content[0] = re.sub(r"\]\((?:\.\./)?" + re.escape(path) + r"\)", f"]({page})",
                            content[0])


def _link_included_repo_files(app, path, docname, content):
    _link_repo_files(app, docname, content)


def setup(app):
    app.connect("source-read", _link_repo_files)
    app.connect("include-read", _link_included_repo_files)
