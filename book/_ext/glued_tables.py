"""Tables as tables: `{glue:table} KEY` pastes a glued pandas table (a DataFrame or its Styler)
as one HTML <table> whose <caption> is the directive's caption, with the papers' id in it.

`{glue:figure}` would wrap the table in a <figure> (a table read as an image, by screen readers
and by Sphinx's numbering alike). This directive takes the same options and caption, and makes a
node that Sphinx enumerates as a table: `{ref}`I-T7`` finds it by its `:name:` as before.

    ```{glue:table} table_I-T7
    :name: I-T7

    **I-T7 Models.** Clean and robust test accuracy of every trained model.
    ```
"""

import re

from docutils import nodes
from myst_nb.ext.glue.directives import PasteFigureDirective

_TABLE_TAG = re.compile(r"<table\b[^>]*>", re.I)


class glued_table(nodes.General, nodes.Element):  # noqa: N801  (docutils names nodes in lower case)
    """A pasted table and its caption (and legend)."""


class PasteTableDirective(PasteFigureDirective):
    """{glue:figure}'s options and caption, made into a glued_table instead of a figure."""

    def run(self):
        made = super().run()
        figure = made[0]
        if not isinstance(figure, nodes.figure):  # a missing key: glue's own warning
            return made
        table = glued_table(figure.rawsource, *figure.children, **figure.attributes)
        for node_id in table["ids"]:  # the label :name: made points at the table, not the figure
            self.state.document.ids[node_id] = table
        if not any(isinstance(child, nodes.caption) for child in table.children):
            return [table, self.state.document.reporter.warning("glue:table needs a caption", line=self.lineno)]
        return [table, *made[1:]]


def with_caption(table_html: str, caption_html: str) -> str:
    """`table_html` (one pasted output) with `caption_html` as its first table's <caption>."""
    opening = _TABLE_TAG.search(table_html)
    if opening is None:
        raise ValueError("glue:table: the glued value renders no HTML <table> (glue a DataFrame or its Styler)")
    caption = f'<caption><span class="caption-text">{caption_html}</span></caption>'
    return table_html[: opening.end()] + caption + table_html[opening.end() :]


def _html(translator, children) -> str:
    """What `translator` writes for `children`, without writing it to the page."""
    saved, translator.body = translator.body, []
    try:
        for child in children:
            child.walkabout(translator)
        return "".join(translator.body)
    finally:
        translator.body = saved


def visit_glued_table(self, node):
    caption = next(c for c in node.children if isinstance(c, nodes.caption))
    legend = [c for c in node.children if isinstance(c, nodes.legend)]
    pasted = [c for c in node.children if not isinstance(c, (nodes.caption, nodes.legend))]
    link = f'<a class="headerlink" href="#{node["ids"][0]}" title="Link to this table">#</a>' if node["ids"] else ""
    self.body.append(self.starttag(node, "div", CLASS="glued-table"))
    self.body.append(with_caption(_html(self, pasted), _html(self, caption.children) + link))
    self.body.append(_html(self, legend))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app):
    app.add_enumerable_node(glued_table, "table", html=(visit_glued_table, None))
    app.add_directive_to_domain("glue", "table", PasteTableDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
