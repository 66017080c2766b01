"""What every page says about where its numbers came from, and the book's shared plot style."""

from . import __version__
from .store import _git_commit

DATA_NOTES = {
    "sample": "the embedded sample of real CIFAR-10 shipped in the repo (nrf/sample)",
    "cifar10": "full CIFAR-10",
}
JPEG_CAVEAT = (
    "The CIFAR-10 images were re-encoded as baseline JPEG (quality 75, 4:2:0 chroma), slightly "
    "degraded compared with the original arrays: accuracies are a little lower than on the original data."
)


def provenance(cfg: dict, data, computed_on: set[str]) -> str:
    """A Markdown paragraph: profile, data (with identity and caveat), hardware, code version."""
    what = DATA_NOTES.get(cfg["data"], f"CIFAR-10 from `{cfg['data']}`")
    hardware = "; ".join(sorted(computed_on))
    return (
        f"**Profile `{cfg['profile']}`** · data: {what}, {len(data.y):,} training images "
        f"(identity `{data.identity}`) · computed on: {hardware} · nrf {__version__}"
        f" (commit `{_git_commit() or 'uncommitted'}`).\n\n{JPEG_CAVEAT}"
    )


def stamp(cfg: dict, data) -> str:
    """A short line for figure titles and captions: profile and data."""
    return f"profile {cfg['profile']}, {data.identity}"
