"""The book as a reader meets it: what the pages say about the papers, their labels, links and
citations, and the facts that were once wrong on them (issue 26). Rendered pages run on their
committed smoke records, as test_pages.py does."""

import ast
import json
import re

import pytest
import yaml

from nrf import claims, contents, notebooks, page, records, store
from nrf.sections import models

BOOK = store.REPO / "book"
SOURCES = sorted(BOOK.glob("*.py")) + sorted(BOOK.glob("*.md"))


def glued(name: str, bare, **params) -> dict:
    """Execute page `name` on its committed smoke record: {glue name: its text/plain or markdown}."""
    out = notebooks.execute(
        name, {"profile": "smoke", **params}, bare / f"{name}.ipynb", log=open(bare / "log.txt", "w")
    )
    values = {}
    for cell in json.loads(out.read_text())["cells"]:
        for output in cell.get("outputs", []):
            key = output.get("metadata", {}).get("scrapbook", {}).get("name")
            data = {k.rsplit("/", 2)[-2] + "/" + k.rsplit("/", 1)[-1]: v for k, v in output.get("data", {}).items()}
            if key and "text/markdown" in data:
                values[key] = "".join(data["text/markdown"])
            elif key:  # a glued string's repr
                text = "".join(data.get("text/plain", ""))
                values[key] = ast.literal_eval(text) if text[:1] in "'\"" else text
    return values


def test_no_page_links_the_spec_file():
    """PAPER.md is not in the repository, and linkify made `PAPER.md` a link to http://PAPER.md."""
    for path in SOURCES:
        assert "PAPER.md" not in path.read_text(), path.name


def test_every_reference_has_a_label():
    labels = {m.lower() for path in SOURCES for m in re.findall(r"^#? ?\(([\w-]+)\)=", path.read_text(), re.M)}
    labels |= {m.lower() for path in SOURCES for m in re.findall(r":name: ([\w-]+)", path.read_text())}
    for path in SOURCES:
        for role in re.findall(r"\{(?:ref|numref)\}`([^`]+)`", path.read_text()):
            target = re.search(r"<([^>]+)>$", role)
            assert (target.group(1) if target else role).lower() in labels, f"{path.name}: {{ref}}`{role}`"


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(), re.M))
    assert {
        "park2021distinctive",
        "moosavi2017universal",
        "ilyas2019features",
        "goh2019discussion",
        "madry2018towards",
        "moosavi2016deepfool",
        "robustness2019",
    } <= keys
    cited = {
        k.strip()
        for path in SOURCES
        for group in re.findall(r"\{cite\}`([^`]+)`", path.read_text())
        for k in group.split(",")
    }
    assert cited and cited <= keys, cited - keys
    bib = (BOOK / "references.bib").read_text()
    assert "arxiv.org/abs/2112.15329" in bib and "arxiv.org/abs/1610.08401" in bib


def test_figures_are_labelled_by_the_papers_ids_only():
    """Sphinx's own "Fig. N" would sit beside the papers' ids (the book's Fig. 4 was I-F1)."""
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["sphinx"]["config"]["numfig"] is False
    # sphinx-jupyterbook-latex turns numfig back on; book/_ext/theme_fixes.py turns it off after it
    assert "theme_fixes" in config["sphinx"]["local_extensions"]
    toc = (BOOK / "_toc.yml").read_text()
    for name in ("reading", "reproduced", "bibliography", *contents.PAGES):
        assert f"file: {name}\n" in toc, name


def test_toc_lists_the_pages_in_the_order_of_the_one_list():
    """nrf.contents.PAGES is the list of the book's sections; _toc.yml, which Jupyter Book needs,
    lists the same ones in the same order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    assert [f for f in files if f in contents.SECTIONS] == list(contents.PAGES)


def test_parameters_cell_is_folded_and_still_papermills():
    for name in ("intro", *contents.PAGES):
        text = (BOOK / f"{name}.py").read_text()
        assert '# %% tags=["parameters", "hide-input"]' in text, name


def test_every_page_imports_its_section_and_passes_its_parameters():
    """One explicit way on every page: it imports its section's module and hands page.record its
    names; no section looked up by a string, no parameters read from the caller's frame."""
    for name in contents.SECTIONS:
        text = (BOOK / f"{name}.py").read_text()
        assert f"from nrf.sections import {name} as section\n" in text, name
        assert "page.begin(globals())" in text and "page.default_profile(section)" in text, name
        assert "rec = page.record(section, globals())" in text, name
        assert "records.section(" not in text and 'page.record("' not in text, name
    assert "_getframe" not in (store.REPO / "nrf" / "page.py").read_text()


def test_no_page_retypes_a_verdicts_criterion():
    """A claim's criterion is the text of the code that decides it (the verdict table's criterion
    column): a page's Verdict section does not restate when a claim holds."""
    for name in contents.PAGES:
        text = (BOOK / f"{name}.py").read_text()
        assert "found = page.verdicts(section, rec)" in text, name
        verdict = text.partition("# ## Verdict")[2].partition("# %%")[0]
        assert not re.search(r"\bholds? (if|when|for)\b", verdict), name


def test_replication_rule_covers_every_status():
    assert set(page.REPLICATION) == set(claims.STATUSES)
    assert page.REPLICATION["holds"] == "replicates" and page.REPLICATION["does not hold"] == "does not replicate"


def test_recompute_command_names_real_options():
    for name, section in contents.SECTIONS.items():  # every notebook, the sweep-only one too
        known = {o.name for o in section.OPTIONS}
        assert set(page.COMMON_OPTIONS[name]) <= known, name
        command = page.recompute_command(name, "medium")
        assert command.startswith(f"Recompute this page: `nrf run {name} -p profile medium`")


def test_eps_as_a_reader_knows_it():
    assert page.eps_text(8 / 255) == "8/255" and page.eps_text(16 / 255) == "16/255"
    assert page.eps_text(1.0) == "1" and page.eps_text(0.5) == "0.5" and page.eps_text(2.0) == "2"


def test_provenance_folds_and_points_to_the_shared_page(bare):
    text = page.provenance(models, records.get(models, {"profile": "smoke"}))
    assert text.startswith(":::{dropdown} Provenance") and "{ref}`reading`" in text
    assert "`nrf run models -p profile smoke`" in text
    assert page.PROFILE_NOTES["smoke"] not in text  # said once, on the reading page


def test_intro_summarises_claims_apart_from_sanity_checks(bare):
    claims_frame, _ = page.glance("smoke")
    assert {"replication", "the paper reports", "kind", "why"} <= set(claims_frame.columns)
    assert set(claims_frame["replication"]) <= set(page.REPLICATION.values())
    t3 = claims_frame[claims_frame["tested by"].str.contains("I-T3")]
    assert t3["the paper reports"].str.contains("23.3").all()  # the paper's CIFAR-10 D_univ, from nrf.reported


def test_generalisation_names_the_papers_epochs(bare):
    """The paper trains for 400 epochs; 100 is this book's paper profile."""
    assert "for 400 epochs" in glued("generalisation", bare)["profile_note"]


def test_models_state_schedule_and_attack(bare):
    values = glued("models", bare)
    assert "x0.1 at epochs" in values["schedule"]  # smoke: step decay; medium: one-cycle
    assert re.search(r"\d+ steps of", values["attack"])


def test_interpolation_orders_k_as_numbers(bare):
    """The record keys K as text ("1", "16", "2", "256"): the page must sort them as numbers."""
    out = notebooks.execute("interpolation", {"profile": "smoke"}, bare / "i.ipynb", log=open(bare / "log.txt", "w"))
    html = "".join(
        "".join(o.get("data", {}).get("application/papermill.record/text/html", ""))
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
        if o.get("metadata", {}).get("scrapbook", {}).get("name") == "table_I-T1"
    )
    ks = [int(k) for k in re.findall(r'class="row_heading level0 row\d+" >(\d+)</th>', html)]
    assert len(ks) >= 2 and ks == sorted(ks)


def test_spatial_states_both_chance_levels(bare):
    values = glued("spatial", bare)
    assert values["std_chance"].endswith("%") and values["uni_chance"].endswith("%")


@pytest.mark.parametrize("name", ["reading"])
def test_shared_page_renders(name, bare):
    values = glued(name, bare)
    assert values["profile_paper"].startswith("The `paper` profile uses the paper's CIFAR-10 settings")
