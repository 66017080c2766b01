"""Fixes to what Jupyter Book's extensions do to the HTML.

- Figures and tables are labelled by the papers' ids only: sphinx-jupyterbook-latex turns
  Sphinx's running "Fig. N" back on (numfig) for every builder, so it is turned off again after it.
- Inline scripts registered after the builder started (sphinx-togglebutton's and sphinx-thebe's
  configuration) reach each page twice under Sphinx 7, and the second `const THEBE_JS_URL` is a
  SyntaxError: each page keeps one copy of every script.
- pydata-sphinx-theme logs "invalid theme mode" for a visitor with no stored colour mode: the
  page's default mode is "auto" (light or dark as the reader's system is).
"""


def _config(app, config):
    config.numfig = False


def _page(app, pagename, templatename, context, doctree):
    context["default_mode"] = context.get("default_mode") or "auto"
    _drop_duplicate_scripts(context)


def _drop_duplicate_scripts(context):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        # an inline script's filename is None from one extension and "" from another: the same script
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _config, priority=900)  # after sphinx-jupyterbook-latex's own handler
    app.connect("html-page-context", _page, priority=900)  # after every extension added its own
    return {"parallel_read_safe": True, "parallel_write_safe": True}
