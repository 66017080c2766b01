"""Every page renders from its committed medium record alone (what `make book` shows on a fresh
clone), as test_pages.py does for smoke; a file of its own so that the two halves run on
different test workers."""

import pytest
from test_pages import render

from nrf import contents, records

# Medium records are committed stage by stage as `nrf reproduce medium` lands them: each the book
# shows renders (a record of other options, left behind by new options until its recompute lands,
# is not shown: the page shows smoke, records.default_profile).
PAGES = [name for name, section in contents.PAGES.items() if records.published(section, {"profile": "medium"})]


@pytest.mark.parametrize("name", PAGES)
def test_medium_page_renders_from_its_record_alone(name, bare):
    render("medium", name, bare)
