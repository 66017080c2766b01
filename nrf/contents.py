"""The book's sections: the one list of them, in the book's order, and the one table from a
section's name to its module, for what takes a name (`nrf compute spatial`, `nrf reproduce`'s
stages). A page imports its own section module (`from nrf.sections import spatial as section`).
book/_toc.yml lists the same pages in the same order (tests/test_pages_book.py checks).
"""

from .sections import (
    appendix,
    constructed,
    constructed_training,
    gallery,
    generalisation,
    interpolation,
    leakage,
    locality,
    models,
    scaling,
    spatial,
    transfer,
    uap,
    uap_analysis,
)

# The book's pages in its order: also `nrf reproduce`'s stages, computed in this order.
PAGES = {
    "models": models,
    "gallery": gallery,
    "locality": locality,
    "spatial": spatial,
    "scaling": scaling,
    "transfer": transfer,
    "constructed": constructed,
    "generalisation": generalisation,
    "interpolation": interpolation,
    "leakage": leakage,
    "appendix": appendix,
    "uap": uap,
    "uap_analysis": uap_analysis,
}
# Every section: the pages, and one point of the constructed-data grid (for `nrf sweep`, not a page).
SECTIONS = {**PAGES, "constructed_training": constructed_training}


def section(name: str):
    """The module of section `name`, or a one-line error naming the sections."""
    if name not in SECTIONS:
        raise ValueError(f"section must be one of {list(SECTIONS)}, got {name!r}")
    return SECTIONS[name]
