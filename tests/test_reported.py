import ast
import json
import re
from pathlib import Path

import pytest

from nrf import contents, records, reported

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "PAPER.md"
# The ids under which PAPER.md's "What the papers report" gives the papers' numbers or sentences
# (typed from PAPER.md: test input, not a number of the book).
PAPER_IDS = [
    "I-T7",
    "I-T3",
    "I-T1",
    "I-T5",
    "I-T2",
    "I-T4",
    "I-T8",
    "I-F4",
    "I-F16",
    "I-F3",
    "I-F14",
    "I-F15",
    "I-F5",
    "I-F6",
    "I-F2",
    "I-F10",
    "I-F9",
    "I-A6",
    "I-F7",
    "II-T1",
    "II-T2",
    "II-T6",
    "II-F7",
    "II-F4",
]


def test_every_entry_names_its_source_setting_and_sentence():
    for entry in reported.ENTRIES:
        for field in reported.FIELDS:
            assert entry.get(field) not in (None, ""), f"{entry['id']} lacks {field}"
        assert isinstance(entry["numbers"], dict) and isinstance(entry.get("quoted"), bool), entry["id"]
    ids = [i for e in reported.ENTRIES for i in [e["id"], *e.get("also", [])]]
    assert len(ids) == len(set(ids))


def test_every_id_the_papers_report_has_an_entry():
    for test_id in PAPER_IDS:
        assert test_id in (reported.get(test_id)["id"], *reported.get(test_id).get("also", []))


@pytest.mark.skipif(not PAPER.exists(), reason="PAPER.md lives in the project's shared folder, beside the checkout")
def test_the_id_list_is_paper_md():
    section = PAPER.read_text().split("## What the papers report")[1]
    found = set(re.findall(r"\*\*((?:I|II)-[A-Z]\d+)", section))
    found |= set(re.findall(r"\*\*(?:I|II)-[A-Z]\d+ / ((?:I|II)-[A-Z]\d+)", section))
    found |= set(re.findall(r"\*\*(?:I|II)-[A-Z]\d+ / (?:I|II)-[A-Z]\d+ / ((?:I|II)-[A-Z]\d+)", section))
    assert found == set(PAPER_IDS)


def test_every_verdict_the_papers_report_on_has_an_entry():
    """Each committed record's verdicts that the book shows: every test id among PAPER_IDS (or a
    part of one, I-F5a) resolves to an entry, so every claim row can show the paper's number. A
    record of other options (one the code's new options have left behind, awaiting its recompute)
    is not shown (records.default_profile), and may be in an older format."""
    seen = set()
    for path in sorted((REPO / "results").glob("*/*.json")):
        if path.stem not in contents.PAGES or not records.published(
            contents.PAGES[path.stem], {"profile": path.parent.name}
        ):
            continue
        for verdict in contents.PAGES[path.stem].verdicts(json.loads(path.read_text())):  # verdicts read numbers only
            for test_id in (i.strip() for i in verdict.test.split(",")):
                seen.add(test_id)
                if test_id in PAPER_IDS or test_id.rstrip("abc") in PAPER_IDS:
                    assert reported.get(test_id)
                    assert reported.text(verdict.test).startswith("the paper reports: ")
    assert {"I-T3", "I-T4", "II-T2"} <= seen


def test_lookup():
    assert reported.get("I-F16") is reported.get("I-F4")
    with pytest.raises(KeyError, match="'I-X9'.*known ids: I-T7"):
        reported.get("I-X9")
    assert reported.ids("I-F4, I-F16") == ["I-F4"]
    line = reported.text("I-T5")
    assert line.startswith("the paper reports: ") and "76.6" in line and "ImageNet-M10" in line
    assert reported.text("II-A1") == "-" and reported.text("Constructed data sets") == "-"


def test_no_section_reads_the_papers_numbers():
    """The papers' numbers are shown, never computed with: no section module imports nrf.reported."""
    for path in (REPO / "nrf" / "sections").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or "", *(a.name for a in node.names)]
                assert not any(n == "reported" or n.endswith(".reported") for n in names), f"{path.name} imports it"


def test_a_page_shows_both_settings():
    rec = {"options": {"profile": "medium", "data": "cifar10", "width": 16, "norm": "l2", "eps": None}}
    text = reported.beside("I-T3, I-F16", rec)
    assert "**The paper reports** (I-T3, Park et al., Table 3" in text and "CIFAR-10 l2: D_adv 64.3%" in text
    assert "(I-F4, " in text
    assert "**This book measures** (CIFAR-10, profile medium, ResNet-18 of base width 16, l2 eps 1)" in text
    assert reported.beside("II-A1", rec).startswith("- The papers report no number here.")
