"""Tables render as HTML tables with their caption, and formulas with the MathJax shipped with
the book (issue 26): the book's Sphinx set-up, on a one-page project built here in seconds."""

import importlib.util
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from nrf import store

BOOK = store.REPO / "book"
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text())
_spec = importlib.util.spec_from_file_location("glued_tables", BOOK / "_ext" / "glued_tables.py")
glued_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(glued_tables)

PAGE = """# A page

See {ref}`T-1` and {ref}`the table <T-1>`; a formula: $\\mathrm{ASR} = \\Pr[f(x + v) = t]$.

```{glue:table} table_x
:name: T-1

**T-1 Things.** The caption, with a glued {glue:text}`n` in it.
```
"""


def test_every_glued_table_is_pasted_as_a_table():
    """A glued DataFrame pasted with {glue:figure} became a <figure> captioned as one."""
    pasted = 0
    for path in sorted(BOOK.glob("*.py")):
        text = path.read_text()
        assert not re.search(r"\{glue:figure\} table_", text), path.name
        for key, body in re.findall(r"\{glue:table\} (\S+)\n(.*?)\n# ```", text, re.S):
            pasted += 1
            assert key.startswith("table_") and ":name: " in body, f"{path.name}: {key}"
            caption = body.partition(":name: ")[2].partition("\n")[2].replace("#", "").strip()
            assert caption, f"{path.name}: {key} has no caption"
    assert pasted >= 20


def test_caption_goes_inside_the_table():
    html = pd.DataFrame({"a": [1.0]}).style.to_html()
    out = glued_tables.with_caption(html, "<strong>I-T7</strong> Models.")
    assert re.search(r'<table id="[^"]+"><caption><span class="caption-text"><strong>I-T7</strong>', out)
    with pytest.raises(ValueError, match="glue:table: the glued value renders no HTML <table>"):
        glued_tables.with_caption("<img src='x.png'>", "caption")


def test_mathjax_is_local():
    assert "sphinx-mathjax-offline" in CONFIG["sphinx"]["extra_extensions"]
    assert not re.match(r"(https?:)?//", CONFIG["sphinx"]["config"]["mathjax_path"])


def _notebook(path):
    """A one-page notebook: a cell that glued a Styler (as a page's glue_values does) and its text."""
    styler = pd.DataFrame({"clean acc. (%)": [91.25, 80.5]}, index=["natural", "robust"]).style.format(precision=1)
    prefix = "application/papermill.record/"
    glued = [("table_x", {"text/html": styler.to_html(), "text/plain": "<Styler>"}), ("n", {"text/plain": "3"})]
    outputs = [
        {
            "output_type": "display_data",
            "data": {prefix + k: v for k, v in data.items()},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": prefix}},
        }
        for name, data in glued
    ]
    cells = [
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": outputs, "source": "glue(...)"},
        {"cell_type": "markdown", "metadata": {}, "source": PAGE},
    ]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path.write_text(json.dumps({"cells": cells, "metadata": kernel, "nbformat": 4, "nbformat_minor": 5}))


def test_glued_table_renders_as_a_captioned_table_and_math_offline(tmp_path):
    src, out = tmp_path / "src", tmp_path / "html"
    src.mkdir()
    _notebook(src / "index.ipynb")
    sphinx = CONFIG["sphinx"]
    extensions = ["myst_nb", *sphinx["extra_extensions"], *sphinx["local_extensions"]]
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(BOOK / '_ext')!r})\n"
        f"extensions = {extensions!r}\nmathjax_path = {sphinx['config']['mathjax_path']!r}\n"
        "nb_execution_mode = 'off'\nnumfig = False\n"
        f"myst_enable_extensions = {CONFIG['parse']['myst_enable_extensions']!r}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", str(src), str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    html = (out / "index.html").read_text()
    assert "<figure" not in html and "<figcaption" not in html
    table = re.search(r'<div class="glued-table" id="t-1">.*?<table[^>]*>(.*?)</table>', html, re.S)
    assert table, html
    caption = re.match(r'<caption><span class="caption-text">(.*?)</span></caption>', table.group(1), re.S)
    assert caption and "<strong>T-1 Things.</strong>" in caption.group(1) and ">3<" in caption.group(1)
    assert ">91.2<" in table.group(1) or ">91.3<" in table.group(1)
    # {ref} to the label: the caption as link text, or the text given
    assert re.search(r'href="#t-1"><span class="std std-ref">T-1 Things\. The caption', html)
    assert re.search(r'href="#t-1"><span class="std std-ref">the table</span>', html)
    # MathJax from the build itself
    scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', html, re.I)
    assert scripts == ["_static/mathjax/tex-chtml.js"], scripts
    assert (out / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    assert list((out / "_static" / "mathjax" / "output" / "chtml" / "fonts").glob("woff-v2/*.woff"))
