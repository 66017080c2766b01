"""Offer each executed page as a downloadable .ipynb.

sphinx-book-theme adds a ".ipynb" download only for MyST-Markdown notebooks; this book's pages
are jupytext .py files, so this copies each page's executed notebook (jupyter_execute/) next to
the page sources and tells the theme where it is, before the theme builds its header buttons.
"""

from pathlib import Path
from shutil import copy2


def _offer_notebook(app, pagename, templatename, context, doctree):
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("html-page-context", _offer_notebook, priority=500)  # the theme's buttons run at 501
    return {"parallel_read_safe": True, "parallel_write_safe": True}
