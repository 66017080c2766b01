"""What every page of the book does besides its own figures: read its parameters, find its
record, say where the numbers came from, show its verdicts. Used by the notebooks only.

    from nrf.sections import gallery as section   # first cell: the page's section
    page.begin(globals())                         # remember the notebook's names so far
    profile = page.default_profile(section)       # the parameters cell (papermill injects more after it)
    rec = page.record(section, globals())         # every name set since begin() is an option
"""

import json

import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from . import claims, contents, options, records, reported, store
from .records import default_profile  # noqa: F401  (the parameters cell's default)

DATA_NOTES = {
    "sample": "the embedded sample of real CIFAR-10 shipped in the repo (nrf/sample)",
    "cifar10": "full CIFAR-10",
}
JPEG_CAVEAT = (
    "The CIFAR-10 images were re-encoded as baseline JPEG (quality 75, 4:2:0 chroma), slightly "
    "degraded compared with the original arrays: accuracies are a little lower than on the original data."
)
PROFILE_NOTES = {
    "smoke": "The `smoke` profile trains narrow models for a few epochs on 5,000 images so that CI can compute it "
    "on two CPU cores: its numbers show the method working and which way effects point, not the "
    "papers' effect sizes.",
    "medium": "The `medium` profile trains the paper's architectures at a quarter of their width, with short "
    "one-cycle schedules, on full CIFAR-10, so that two CPU cores compute it in hours: effects are "
    "measured on thousands of test images, on models of near-usual accuracy, with fewer images, "
    "perturbations and grid points than the paper's (each page's provenance lists where they differ).",
    "paper": "The `paper` profile uses the paper's CIFAR-10 settings (its appendix setting; most of the paper's "
    "results are on ImageNet-M10 at 224 px), for a GPU; its constructed-data pages train one point of the "
    "paper's grid, on a shorter schedule, by default.",
}
_before: set[str] = set()


def begin(names: dict) -> None:
    """Remember the names the notebook has before its parameters cell (`names`: its globals());
    set the one plotting theme of every page (seaborn's, at a size read without zooming)."""
    sns.set_theme(context="notebook", style="ticks", font_scale=1.05)
    _before.clear()
    _before.update(names)


def parameters(names: dict) -> dict:
    """The names of `names` (the notebook's globals()) set since begin(): the parameters cell and
    what papermill injected after it."""
    return {k: v for k, v in names.items() if k not in _before and not k.startswith("_")}


def record(section, names: dict) -> dict:
    """The record of `section` (the page's module of nrf.sections) for the notebook's parameters,
    read from `names` (its globals(); an unknown name is an error), without progress bars; glues
    `provenance` for the page's first paragraph."""
    rec = records.get(section, parameters(names), progress=False)
    glue("provenance", Markdown(provenance(section, rec)), display=False)
    return rec


def paper_grid(opts: list) -> dict:
    """The paper's own constructed-data grid (grids/paper-full.yaml), for the options of `opts`
    that it sets: the paper profile trains one point of it by default."""
    full = options.options_file(store.REPO / "grids" / "paper-full.yaml")
    names = {o.name for o in opts}
    return {k: v for k, v in full.items() if k in names}


def provenance(section, rec: dict) -> str:
    """A Markdown paragraph on `section`'s record: profile, options changed, data, hardware, commits,
    where it was read."""
    p, opts = rec["provenance"], rec["options"]
    defaults = options.resolve(section.OPTIONS, opts["profile"])
    changed = [f"`{k}={v!r}`" for k, v in opts.items() if records.jsonable(defaults.get(k)) != v]
    data = p.get("data") or {}
    name = opts.get("data")
    what = DATA_NOTES.get(name, f"CIFAR-10 from `{name}`") if name else "no data set"
    sizes = f", {data['n_train']:,} training and {data.get('n_test', 0):,} test images" if data else ""
    caveat = "\n\nThe images were re-encoded as JPEG: {ref}`reading-data`." if name and name != "sample" else ""
    paper = records.jsonable(options.resolve(section.OPTIONS, "paper", paper_grid(section.OPTIONS)))
    differs = [
        f"{k} {v!r} (paper profile: {paper[k]!r})" for k, v in opts.items() if k != "profile" and paper.get(k) != v
    ]
    if differs:
        caveat += (
            f"\n\nWhere this run differs from this book's paper profile (the paper's settings on CIFAR-10, "
            f"its full training grid grids/paper-full.yaml included): {'; '.join(differs)}."
        )
    body = (
        f"**Profile `{opts['profile']}`** ({'options: ' + ', '.join(changed) if changed else 'its default options'})"
        f" · data: {what}{sizes}{' (identity `' + data['identity'] + '`)' if data else ''}"
        f" · computed on: {'; '.join(p['hardware'])} · code: nrf {p['nrf']}, commit `{p['commit']}`"
        f" (artifacts from {', '.join(f'`{c}`' for c in p['commits']) or 'this run'})"
        f" · {p['compute_seconds']:,.0f} s of compute · record: {rec.get('source', 'computed now')}, {p['created']}."
        f"\n\nWhat the profiles are, the data's JPEG caveat and how to read a verdict: {{ref}}`reading`.{caveat}"
    )
    # Folded: the reader opens it when needed. A recomputation that moved an effect stays in sight.
    return (
        f":::{{dropdown}} Provenance: profile `{opts['profile']}`, {what}\n{body}\n:::"
        f"{recomputation(p)}\n\n{recompute_command(p['section'], opts['profile'])}"
    )


# Per page, the options a reader most likely changes (tests check that each is an option of its section).
COMMON_OPTIONS = {
    "models": ("epochs", "width", "robust_eps"),
    "gallery": ("norm", "eps", "targets"),
    "locality": ("norm", "target", "patch_size"),
    "spatial": ("norm", "stride", "n_standard"),
    "scaling": ("scales", "factor", "targets"),
    "transfer": ("norm", "eps", "n_test"),
    "constructed": ("n_source", "Ks", "eps_scale"),
    "generalisation": ("train_epochs", "lrs", "model_width"),
    "interpolation": ("Ks", "target", "train_epochs"),
    "leakage": ("probe_steps", "probe_lr", "train_epochs"),
    "appendix": ("target", "steps", "base_sizes"),
    "uap": ("archs", "norms", "sizes"),
    "uap_analysis": ("norm", "scales", "rounds"),
    "constructed_training": ("dataset", "train_lr", "train_epochs"),
}


def recompute_command(name: str, profile: str) -> str:
    """The one command that recomputes a page, and the options a reader most likely changes."""
    return (
        f"Recompute this page: `nrf run {name} -p profile {profile}`; add `-p NAME VALUE` to change an option, "
        f"such as {', '.join(f'`{o}`' for o in COMMON_OPTIONS[name])} (`nrf options {name}` lists them all)."
    )


def recomputation(p: dict) -> str:
    """A sentence on how this record compares with the committed one it replaced, if any; a
    claim whose effect moved beyond its spread is flagged in bold."""
    r = p.get("recomputation")
    if r is None:
        return ""
    was = f"the record it replaced (commit `{r['against']['commit']}`, {'; '.join(r['against']['hardware'])})"
    moved = [c for c in r["claims"] if c["differs"]]
    if not moved:
        return f"\n\nRecomputed: every effect agrees with {was} within its spread ({len(r['claims'])} claims)."
    return (
        f"\n\n**Recomputed, and it differs from {was} beyond the spread:** "
        + "; ".join(f"{c['claim']} (was {c['before']}, now {c['after']})" for c in moved)
        + "."
    )


def verdict_frame(verdicts: list[claims.Verdict]) -> pd.DataFrame:
    """The page's claims as a table: claim, test, effect ± s.e., criterion, verdict (no rows where
    the record decides no claim, e.g. models without the robust one)."""
    columns = ["claim", "tested by", "effect", "criterion", "verdict", "why"]
    return pd.DataFrame(
        [[v.claim, v.test, v.effect_text(), v.criterion, v.status, v.detail] for v in verdicts], columns=columns
    ).set_index("claim")


def verdicts(section, rec: dict) -> list[claims.Verdict]:
    """Show `section`'s verdicts on its record as a table (and return them for the page's prose).
    Each criterion is the text of the code that applies it, never retyped on a page."""
    found = section.verdicts(rec)
    display(
        Markdown(
            f"Each claim's criterion is stated by the code that decides it (`verdicts` in "
            f"`nrf/sections/{records.name_of(section)}.py`)."
        )
    )
    display(verdict_frame(found).style.set_properties(**{"text-align": "left"}))
    return found


def eps_text(eps: float) -> str:
    """A budget as a reader knows it: '8/255' for a multiple of 1/255 below 1 (linf budgets), else
    three significant digits ('1', '0.5')."""
    k = round(eps * 255)
    return f"{k}/255" if 0 < eps < 1 and abs(eps * 255 - k) < 1e-6 else f"{eps:.3g}"


def glue_values(**values) -> None:
    """glue(name, value) for each value a page's prose quotes ({glue:text}`name`)."""
    for name, value in values.items():
        glue(name, value, display=False)


def title(name: str) -> str:
    """The title of page `name`: its notebook's heading (book/NAME.py), as the book's sidebar shows it."""
    lines = (store.REPO / "book" / f"{name}.py").read_text().splitlines()
    return next(line.removeprefix("# # ") for line in lines if line.startswith("# # "))


# The first page's replication summary, by a fixed rule from each verdict's status: a claim that
# holds replicates; one that holds in part (some of its checks pass) replicates in direction only;
# one that does not hold does not replicate; one the run has no signal or no setting for cannot be
# tested at this scale.
REPLICATION = {
    "holds": "replicates",
    "holds in part": "direction only",
    "does not hold": "does not replicate",
    "cannot be tested": "cannot be tested at this scale",
    "not applicable": "cannot be tested at this scale",
}


def glance(profile: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims, runs): every claim of every page decided from its record for `profile` (None:
    the profile each page shows by default) at default options, with a link to the page; and
    one row per record: its profile, where, on what and how long."""
    claim_rows, run_rows = [], []
    for name, section in contents.PAGES.items():
        rec = records.get(section, {"profile": profile or default_profile(section)}, progress=False)
        p = rec["provenance"]
        link = f'<a href="{name}.html">{title(name)}</a>'
        for v in section.verdicts(rec):
            claim_rows.append(
                {
                    "claim": v.claim,
                    "tested by": v.test,
                    "effect (± s.e.)": v.effect_text(),
                    "verdict": v.status,
                    "replication": REPLICATION[v.status],
                    "the paper reports": reported.text(v.test).removeprefix("the paper reports: "),
                    "why": v.detail,
                    "kind": v.kind,
                    "page": link,
                }
            )
        run_rows.append(
            {
                "page": link,
                "profile": p["profile"],
                "hardware": "; ".join(p["hardware"]),
                "computed at commit": ", ".join(p["commits"]),
                "compute (s)": round(p["compute_seconds"]),
                "record": rec["source"].split(":")[0],
                "recomputed": _agreement_word(p),
            }
        )
    return pd.DataFrame(claim_rows), pd.DataFrame(run_rows)


def _agreement_word(p: dict) -> str:
    r = p.get("recomputation")
    if r is None:
        return ""
    moved = sum(c["differs"] for c in r["claims"])
    return f"differs ({moved} of {len(r['claims'])} claims)" if moved else "agrees"


def stages(profile: str) -> pd.DataFrame | None:
    """The table of the last `nrf reproduce PROFILE` (stage, status, seconds, peak memory), if any."""
    path = store.results_root() / profile / "reproduce.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    frame = pd.DataFrame(report["stages"]).rename(
        columns={"peak_memory_mib": "peak memory (MiB)", "peak_gpu_mib": "peak GPU memory (MiB)"}
    )
    frame = frame.dropna(axis="columns", how="all")  # no GPU column for a CPU run
    frame.attrs.update(hardware=report["hardware"], commit=report["commit"], finished=report["finished"])
    return frame
