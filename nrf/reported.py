"""What the papers report: their own numbers and claim sentences (nrf/reported.yaml), for display.

The pages show them beside the book's measurements, labelled as the paper's, with the paper's
setting named. They are never an input to a verdict or to a number of the book: no module of
nrf/sections imports this one (a test checks it).
"""

from pathlib import Path

import yaml

FIELDS = ("id", "source", "setting", "sentence", "numbers", "text")
ENTRIES: list[dict] = yaml.safe_load((Path(__file__).parent / "reported.yaml").read_text())
_BY_ID = {i: e for e in ENTRIES for i in [e["id"], *e.get("also", [])]}


def get(test_id: str) -> dict:
    """The entry for one PAPER.md id (I-T3, or an id reported with another, such as I-F16)."""
    if test_id not in _BY_ID:
        raise KeyError(f"the papers report nothing under id {test_id!r}; known ids: {', '.join(_BY_ID)}")
    return _BY_ID[test_id]


def ids(test_ids: str) -> list[str]:
    """The ids of a Verdict's `test` field ("I-F4, I-F16") that the papers report on, each entry once."""
    found = [_BY_ID[i.strip()]["id"] for i in test_ids.split(",") if i.strip() in _BY_ID]
    return list(dict.fromkeys(found))


def text(test_ids: str) -> str:
    """'the paper reports: NUMBERS (SETTING)' for a Verdict's `test` field, "-" where the papers
    report nothing under those ids."""
    found = [get(i) for i in ids(test_ids)]
    if not found:
        return "-"
    return "the paper reports: " + "; ".join(f"{e['text']} ({e['setting']})" for e in found)


DATA = {"cifar10": "CIFAR-10", "sample": "a 5,000-image sample of CIFAR-10"}


def ours(rec: dict) -> str:
    """This book's setting for a record, in the words `setting` uses for the paper's: data set,
    profile, architecture width and budget, from the record's options."""
    o = rec["options"]
    words = [f"{DATA.get(o.get('data'), o.get('data', 'no data set'))}, profile {o['profile']}"]
    if "width" in o:
        words.append(f"ResNet-18 of base width {o['width']}")
    if "norm" in o:
        eps = o.get("eps") or (1.0 if o["norm"] == "l2" else 8 / 255)
        words.append(f"{o['norm']} eps {eps:.3g}" if o["norm"] == "l2" else f"linf eps {255 * eps:.3g}/255")
    if "eps_scale" in o:
        words.append(
            f"constructed sets at {o['eps_scale']:g} x the budget (l2 {o['eps_scale'] * o['l2_eps']:.3g}, "
            f"linf {255 * o['eps_scale'] * o['linf_eps']:.3g}/255)"
        )
    return ", ".join(words)


def beside(test_ids: str, rec: dict) -> str:
    """Markdown for a page: what the paper reports under `test_ids`, quoted with its setting, and
    this book's setting, whose measurements the page's tables and verdicts show."""
    found = [get(i) for i in ids(test_ids)]
    lines = [
        f"- **The paper reports** ({e['id']}, {e['source']}; {e['setting']}): {e['text']}."
        + (f' "{e["sentence"]}"' if e.get("quoted") else "")
        for e in found
    ]
    lines = lines or ["- The papers report no number here."]
    return "\n".join([*lines, f"- **This book measures** ({ours(rec)}): the tables above and the verdicts below."])
