"""Every page renders from its committed record alone: no data set, no store, no model.

The committed smoke records render as the medium ones do (test_pages_medium.py). Each page is
executed as papermill would, with NRF_RECORDS=committed (nothing may be computed), an empty
store, an empty data cache and no full CIFAR-10, and must finish without error in seconds.
"""

import json
import time

import pandas as pd
import pytest

from nrf import contents, notebooks, page, records, store
from nrf.sections import generalisation

PROFILE = "smoke"  # CI computes it from scratch: every page has a committed record of it
PAGES = [(PROFILE, name) for name in contents.PAGES]  # the medium ones: test_pages_medium.py


def render(profile: str, name: str, bare):
    """Execute page `name` on its committed `profile` record, as papermill would: seconds, and
    nothing computed, no data read."""
    assert (store.results_root() / profile / f"{name}.json").exists(), f"no committed {profile} record of {name}"
    start = time.perf_counter()
    notebooks.execute(name, {"profile": profile}, bare / f"{name}.ipynb", log=open(bare / "log.txt", "w"))
    assert time.perf_counter() - start < 120
    assert not (bare / "store").exists() and not (bare / "cache").exists()  # nothing computed, no data read


@pytest.mark.parametrize("profile, name", PAGES)
def test_page_renders_from_its_record_alone(profile, name, bare):
    render(profile, name, bare)


def test_default_profile_is_medium_where_committed(bare, monkeypatch):
    """medium where a medium record of the section's medium options is committed; a record of
    other options (left behind by new options until its recompute lands) is not shown."""
    for name, section in contents.PAGES.items():
        path = store.results_root() / "medium" / f"{name}.json"
        options = records.jsonable(records.resolve(section, {"profile": "medium"}))
        medium = path.exists() and json.loads(path.read_text())["options"] == options
        assert page.default_profile(section) == ("medium" if medium else "smoke")
    monkeypatch.setenv("NRF_PROFILE", "smoke")
    assert page.default_profile(contents.PAGES["models"]) == "smoke"
    monkeypatch.setenv("NRF_PROFILE", "large")
    with pytest.raises(ValueError, match="NRF_PROFILE must be one of"):
        page.default_profile(contents.PAGES["models"])


def test_claims_at_a_glance(bare):
    claims, runs = page.glance(PROFILE)
    assert list(runs["page"].str.extract(r'href="(\w+)\.html"')[0]) == list(contents.PAGES)
    assert set(claims["verdict"]) <= {"holds", "holds in part", "does not hold", "cannot be tested", "not applicable"}
    assert {"I-T7", "I-F2", "I-T3", "II-T1"} <= {t for tests in claims["tested by"] for t in tests.split(", ")}
    assert isinstance(claims, pd.DataFrame) and len(claims) >= len(contents.PAGES)


def test_intro_renders(bare):
    notebooks.execute("intro", {"profile": PROFILE}, bare / "intro.ipynb", log=open(bare / "log.txt", "w"))
    notebooks.execute("intro", {}, bare / "intro.ipynb", log=open(bare / "log.txt", "w"))  # each page's default


def test_misspelled_page_parameter_fails(bare):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="unknown option 'wdith'"):
        notebooks.execute("models", {"profile": PROFILE, "wdith": 4}, bare / "m.ipynb", log=open(bare / "log.txt", "w"))


def test_provenance_compares_with_the_papers_own_grid(bare):
    """The paper profile trains one point of the paper's grid: a page names the paper's grid
    (grids/paper-full.yaml), not the profile's shortened default, as the paper's setting."""
    text = page.provenance(generalisation, records.get(generalisation, {"profile": PROFILE}))
    assert "train_epochs 12 (paper profile: 400)" in text
    assert "lrs [0.05, 0.1] (paper profile: [0.01, 0.05, 0.1])" in text
    assert "(paper profile: 100)" not in text and "(paper: " not in text
