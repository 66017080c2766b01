"""Result records: the small, self-contained result of one section run, which its page renders.

A section's `run(cfg)` does the expensive work (through the artifact store) and returns
{"results": plain numbers, lists and strings, "tensors": small tensors for figures, "data":
what it ran on}. `get` wraps it into a record with provenance and finds it where it already is:

1. published: `results/<profile>/<section>.json` in the repo ($NRF_RESULTS), committed to git with the
   code that computed it (`publish` writes it), if it was run with these options;
2. the store: a record computed earlier on this machine by the same code;
3. computed now (then kept in the store).

A published record is JSON (numbers that `git diff` shows) beside a `.npz` of its tensors; no
model weights. It carries a checksum over its numbers and tensors, and one that fails it is an
error naming the file (reproduce recomputes it). A record belongs to the content of the data it
read, not to the `data` option's text: a published record computed from other data than the
option names on this machine is not used, and stored records are keyed by that content too.
NRF_RECORDS chooses where records may come from: `auto` (the order above),
`fresh` (ignore published records: recompute from the store or from scratch, as CI does for
smoke) or `committed` (only published or stored records, never computed: a missing record is an
error).
"""

import contextlib
import hashlib
import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__, claims, data, options, runtime, store, zoo

MODES = ("auto", "fresh", "committed")
MAX_TENSOR_BYTES = 8 * 2**20  # a record is for figures: perturbations and heat maps, never weights
PARTS = ("checksum", "options", "provenance", "results")  # what every saved record holds


class RecordError(ValueError):
    """A saved record that fails its check: unreadable, incomplete, or not the numbers and
    tensors its checksum was written for (edited, truncated or corrupt)."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(
            f"the record {path} {problem}: restore it from git, or recompute it "
            f"(nrf reproduce {self.path.parent.name} --stages {self.path.stem})"
        )


def name_of(section) -> str:
    """The name of a section module (nrf.sections.spatial: "spatial"), which names its record; a
    one-line error for anything else. Its code fingerprint is taken at first use, from the code
    this process runs, not later from disk."""
    if not all(hasattr(section, part) for part in ("__name__", "OPTIONS", "run", "verdicts")):
        raise ValueError(
            f"section must be a module of nrf.sections (as `from nrf.sections import spatial`), got {section!r}"
        )
    store.fingerprint(section.run.__module__)
    return section.__name__.rpartition(".")[2]


def resolve(section, params: dict) -> dict:
    """A section's options from parameters that may include `profile` (default smoke)."""
    name = name_of(section)  # first: a section given by name is an error naming what is wanted
    params = dict(params)
    profile = params.pop("profile", "smoke")
    return options.resolve(section.OPTIONS, profile, params, section=name)


def data_note(train, test=None) -> dict:
    """What a section ran on, for its record: the data's origin, identity and size."""
    note = {"identity": train.identity, "n_train": len(train), "classes": list(train.classes)}
    if test is not None:
        note.update(test_identity=test.identity, n_test=len(test))
    return note


def jsonable(value):
    """Plain JSON: tensors and arrays become lists, numpy scalars numbers, tuples lists, NaN null."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: an undefined number is null
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"a record's results must be numbers, strings, lists, mappings or tensors, got {type(value).__name__}"
    )


def compute(section, cfg: dict) -> dict:
    """Run `section` with resolved options `cfg` and wrap its output into a record (`get` calls it
    inside the profile's precision)."""
    name = name_of(section)
    start = time.perf_counter()
    with store.trail() as artifacts:
        out = section.run(cfg)
    tensors = {k: v.detach().cpu() for k, v in (out.get("tensors") or {}).items()}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if size > MAX_TENSOR_BYTES:
        raise ValueError(
            f"section {name}'s record holds {size / 2**20:.1f} MiB of tensors; at most "
            f"{MAX_TENSOR_BYTES / 2**20:.0f} MiB (records are for figures, not weights)"
        )
    unique = list({a["key"]: a for a in artifacts}.values())
    provenance = {
        "section": name,
        "profile": cfg["profile"],
        "data": out.get("data"),
        "nrf": __version__,
        "commit": store.git_commit(),
        "code": store.fingerprint(section.run.__module__),
        "created": store.now(),
        "threads": runtime.threads(),
        "precision": options.precision(cfg["profile"]),
        "hardware": sorted({a["hardware"] for a in unique} | {runtime.hardware()}),
        "commits": sorted({a["commit"] or "unknown" for a in unique}),
        "compute_seconds": round(sum(a["seconds"] or 0 for a in unique), 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "artifacts": unique,
    }
    return {"options": jsonable(cfg), "provenance": provenance, "results": jsonable(out["results"]), "tensors": tensors}


def get(section, params: dict | None = None, *, mode: str | None = None, progress: bool = True) -> dict:
    """The record of `section` (a module of nrf.sections) for `params` (options, and `profile`),
    from wherever it is; computing, it shows progress bars unless `progress` is False."""
    cfg = resolve(section, params or {})
    name = name_of(section)
    mode = mode or os.environ.get("NRF_RECORDS", "auto")
    if mode not in MODES:
        raise ValueError(f"NRF_RECORDS must be one of {list(MODES)}, got {mode!r}")
    if mode != "fresh" and _published(section, cfg) is not None:
        return {
            **load(store.results_root() / cfg["profile"] / f"{name}.json"),
            "source": f"committed: results/{cfg['profile']}/{name}.json",
        }
    keyed = {**cfg, "data_identities": _data_identities(cfg)}  # the data's content, not the option's text
    quiet = contextlib.nullcontext() if progress else runtime.quiet()
    with runtime.precision(options.precision(cfg["profile"])), quiet:  # the store key carries the precision
        folder = store.path(f"record-{name}", keyed, section.run)
        if mode == "committed" and not (folder / "meta.json").exists():
            raise ValueError(
                f"no record of section {name} for these options (committed or stored); compute it with "
                f"`nrf compute {name} -p profile {cfg['profile']} ...` or set NRF_RECORDS=auto"
            )
        fresh = store.fetch(f"record-{name}", keyed, _computer(section, cfg))
    return {**fresh, "source": f"store: {folder}"}


def _data_identities(cfg: dict) -> list[str] | None:
    """[train, test] identities of the data that option `data` names on this machine, or None
    where it is not here (or the section reads none): a committed record computed elsewhere is
    then all there is, and is shown as it is."""
    source = cfg.get("data")
    if source is None or source == "cifar10" and data.full_cifar10_path() is None:
        return None
    source = zoo.resolve_data(source)
    if source != "sample" and not Path(source).exists():
        return None
    return [data.cifar10_identity(source, split) for split in ("train", "test")]


def _computer(section, cfg: dict):
    """compute() as store.fetch wants it; its module is the section's, so the record's key
    carries the section's code fingerprint."""

    def go(_workdir):
        return compute(section, cfg)

    go.__module__ = section.run.__module__
    return go


def save(record: dict, path: Path) -> Path:
    """Write a record as <path>.json (+ <path>.npz for its tensors), atomically, with its checksum."""
    path = Path(path).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in record.items() if k not in ("tensors", "source")}
    if record["tensors"]:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: v.numpy() for k, v in record["tensors"].items()})
        blob = buf.getvalue()
        runtime.write_atomic(path.with_suffix(".npz"), blob)
        body["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    body = json.loads(json.dumps(body, allow_nan=False))  # the checksum is of what the file holds
    body["checksum"] = checksum(body)
    runtime.write_atomic(path, (json.dumps(body, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return path


def checksum(body: dict) -> str:
    """A record's "checksum": sha256 of its JSON body less the checksum itself, i.e. of its
    options, provenance, numbers and the sha256 of its tensors (so the .npz is covered too)."""
    rest = {k: v for k, v in body.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def load(path: Path) -> dict:
    """A record written by save(), checked (numbers and tensors against their checksums)."""
    body, blob = _read(path)
    tensors = {}
    if blob is not None:
        with np.load(io.BytesIO(blob)) as npz:
            tensors = {k: torch.from_numpy(npz[k]) for k in npz.files}
    return {**{k: v for k, v in body.items() if k not in ("checksum", "tensors_sha256")}, "tensors": tensors}


def _read(path: Path) -> tuple[dict, bytes | None]:
    """(JSON body, .npz bytes or None) of a record written by save(), or a RecordError naming the
    file when it does not parse, lacks a part, or its numbers or tensors fail their checksums."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(path, f"cannot be read ({getattr(e, 'strerror', None) or e})") from None
    missing = [k for k in PARTS if k not in body] if isinstance(body, dict) else list(PARTS)
    if missing:
        raise RecordError(path, f"has no {missing[0]!r}")
    if body["checksum"] != checksum(body):
        raise RecordError(path, "does not match its checksum (edited, or corrupt)")
    npz = path.with_suffix(".npz")
    if "tensors_sha256" not in body:
        if npz.exists():
            raise RecordError(path, f"has no 'tensors_sha256' for the {npz.name} beside it")
        return body, None
    try:
        blob = npz.read_bytes()
    except OSError as e:
        raise RecordError(path, f"has tensors, but {npz} cannot be read ({e.strerror})") from None
    if hashlib.sha256(blob).hexdigest() != body["tensors_sha256"]:
        raise RecordError(path, f"does not match its tensors {npz} (checksum)")
    return body, blob


def current(section, params: dict | None = None) -> bool:
    """Is the published record of `section` computed with these options, from this data, by the
    code as it is now, in the profile's precision (records from before precisions were recorded
    are fp32)? One that fails its check is not: it is to be recomputed and replaced."""
    cfg = resolve(section, params or {})
    try:
        body = _published(section, cfg)
    except RecordError as e:
        print(f"nrf: the record {e.path} {e.problem}: it is recomputed", flush=True)
        return False
    return (
        body is not None
        and body["provenance"].get("code") == store.fingerprint(section.run.__module__)
        and body["provenance"].get("precision", "fp32") == options.precision(cfg["profile"])
    )


def default_profile(section) -> str:
    """The profile the page of `section` shows when none is given: $NRF_PROFILE if set, else
    `medium` where its medium record is published, else `smoke`. The page's first paragraph and
    the first page's table say which profile each page shows; `nrf compute` and `nrf sweep` take
    the same."""
    chosen = os.environ.get("NRF_PROFILE")
    if chosen:
        if chosen not in options.PROFILES:
            raise ValueError(f"NRF_PROFILE must be one of {list(options.PROFILES)}, got {chosen!r}")
        return chosen
    return "medium" if published(section, {"profile": "medium"}) else "smoke"


def published(section, params: dict | None = None) -> bool:
    """Is a record of `section` for these options published (under results/)?"""
    return _published(section, resolve(section, params or {})) is not None


def _published(section, cfg: dict) -> dict | None:
    """The JSON body of the published record of `section`, if it was computed with options `cfg`
    from the data they name here (_data_identities); a RecordError if it fails its check."""
    path = store.results_root() / cfg["profile"] / f"{name_of(section)}.json"
    if not path.exists():
        return None
    body, _ = _read(path)
    if body["options"] != jsonable(cfg):
        return None
    read = body["provenance"].get("data") or {}
    found = _data_identities(cfg)
    return body if found is None or [read.get("identity"), read.get("test_identity")] == found else None


def require_clean(profile: str, commits=()) -> None:
    """Published medium and paper records name the commits that computed them (the record's and
    its artifacts'), so that anyone can check out that code: a checkout with uncommitted changes
    (git's "-dirty") names no such commit, and may not write them into its results/. Smoke
    records are CI's, recomputed on every change; records written elsewhere (NRF_RESULTS) are not
    the checkout's."""
    if profile == "smoke" or store.results_root().resolve() != (store.REPO / "results").resolve():
        return
    dirty = sorted({c for c in [store.git_commit(), *commits] if c and c.endswith("-dirty")})
    if dirty:
        raise ValueError(
            f"{profile} records in results/{profile}/ must come from committed code, but this one would "
            f"name {', '.join(dirty)}: commit your changes first (artifacts computed from uncommitted "
            f"code are recomputed with `nrf reproduce {profile} --recompute` and an empty NRF_STORE)"
        )


def publish(section, params: dict | None = None, progress: bool = True) -> Path:
    """Compute (or fetch) a record of `section` and publish it: write it under results/<profile>/,
    where the book finds it, to be committed to git with the code that computed it."""
    profile = resolve(section, params or {})["profile"]
    require_clean(profile)  # before computing
    record = get(section, params, mode="fresh", progress=progress)
    require_clean(profile, record["provenance"]["commits"])
    folder = store.results_root() / record["options"]["profile"]
    path = folder / f"{name_of(section)}.json"
    try:
        before = _published(section, resolve(section, record["options"]))
    except RecordError as e:
        print(f"nrf: replacing the record {path}, which {e.problem}", flush=True)
        before = None
    if before is not None:  # a recomputation: does it agree?
        record["provenance"]["recomputation"] = agreement(section, load(path), record)
    # what a section publishes beside its record (trained models), except for smoke: CI trains
    # those from scratch, and a published model would be taken instead (zoo.trained)
    if hasattr(section, "commit") and record["options"]["profile"] != "smoke":
        with runtime.precision(record["provenance"]["precision"]):  # the store keys of what it computed
            section.commit(record, folder)
    return save(record, path)


def agreement(section, before: dict, after: dict) -> dict:
    """How a recomputed record compares with the one published before it, claim by claim: an
    effect that moved by more than claims.K_SE standard errors of the difference differs
    beyond its spread (a bug, or a result that hangs on the machine or the seed)."""
    rows = []
    old = {v.claim: v for v in section.verdicts(before)}
    for new in section.verdicts(after):
        was = old.get(new.claim)
        if was is None or None in (was.effect, new.effect):
            continue
        se = claims.diff_se(was.spread or 0.0, new.spread or 0.0)
        rows.append(
            {
                "claim": new.claim,
                "before": was.effect_text(),
                "after": new.effect_text(),
                "differs": abs(new.effect - was.effect) > claims.K_SE * se,
            }
        )
    p = before["provenance"]
    return {"against": {"commit": p["commit"], "hardware": p["hardware"], "created": p["created"]}, "claims": rows}
