"""The artifact store: expensive results keyed by what produced them.

A result (trained model, perturbations, metrics) is a dict of tensors and plain values, saved
under `<root>/<section>/<key>/` where `key` is a stable hash of the section name, its
parameters and the core version. A section that finds its artifacts re-renders without
recomputing; a file that is missing, truncated or altered fails its checksum and is computed
again, never used. Long computations get a scratch folder that survives a crash, so they can
checkpoint there and resume.

    result = store.fetch("models", params, compute)   # compute(workdir) -> dict
"""

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .runtime import hardware

REPO = Path(__file__).resolve().parent.parent


def default_root() -> Path:
    """$NRF_STORE if set, else `store/` in the checkout."""
    return Path(os.environ.get("NRF_STORE", REPO / "store"))


def key(section: str, params: dict) -> str:
    """A stable 16-hex-digit hash of (section, params, core version); params must be JSON-able."""
    try:
        text = json.dumps({"section": section, "params": params, "version": __version__}, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"params for section {section!r} must be JSON-serialisable: {e}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path(section: str, params: dict, root: Path | None = None) -> Path:
    return Path(root or default_root()) / section / key(section, params)


def load(section: str, params: dict, root: Path | None = None) -> dict | None:
    """The stored result, or None if it is absent or fails its checksum."""
    folder = path(section, params, root)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        blob = (folder / "result.pt").read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ValueError("checksum mismatch")
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    except Exception as e:  # truncated JSON, bad pickle, checksum: recompute, never use
        print(f"nrf.store: discarding corrupt artifact {folder} ({type(e).__name__}: {e})")
        return None


def save(section: str, params: dict, result: dict, root: Path | None = None, seconds: float | None = None) -> Path:
    """Write result atomically: into a temporary folder, then renamed into place."""
    folder = path(section, params, root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(result, buf)
    blob = buf.getvalue()
    meta = {
        "section": section,
        "params": params,
        "version": __version__,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "commit": _git_commit(),
        "seconds": seconds,
    }
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    (tmp / "result.pt").write_bytes(blob)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def meta(section: str, params: dict, root: Path | None = None) -> dict:
    """Provenance of a stored result (hardware, commit, date, seconds)."""
    return json.loads((path(section, params, root) / "meta.json").read_text())


def fetch(section: str, params: dict, compute: Callable[[Path], dict], root: Path | None = None) -> dict:
    """Load the result for (section, params), or compute, save and return it.

    `compute(workdir)` gets a scratch folder that persists until the result is saved: write
    checkpoints there and a crashed or killed run resumes from them on the next call. Processes
    that ask for the same missing result at once (parallel sweep points) compute it once: the
    others wait on a lock in the scratch folder, then load it.
    """
    result = load(section, params, root)
    if result is not None:
        return result
    workdir = path(section, params, root).with_suffix(".work")
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "lock", "a") as lock:  # parallel sweep points: one computes, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = load(section, params, root)  # computed while this process waited
        if result is not None:
            shutil.rmtree(workdir, ignore_errors=True)
            return result
        start = time.perf_counter()
        result = compute(workdir)
        save(section, params, result, root, seconds=round(time.perf_counter() - start, 2))
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
