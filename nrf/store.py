"""The artifact store: expensive results keyed by what produced them.

A result (trained model, perturbations, metrics) is a dict of tensors and plain values, saved
under `<root>/<kind>/<key>/`. The key hashes the kind, its parameters (1 and 1.0 are the same
number), where it computes (`runtime.compute_id`: CPU results depend on the thread count) and a
fingerprint of the code that computes it: the module of the compute function and the nrf
modules it imports, with docstrings and comments dropped, so editing the code of a kind
invalidates that kind and editing a docstring or a plot does not. A file that is missing,
truncated or altered fails its checksum and is computed again, never used. Long computations
get a scratch folder that survives a crash, so they can checkpoint there and resume.

    result = store.fetch("models", params, compute)   # compute(workdir) -> dict

Each artifact's meta.json is its provenance: the commit and hardware that computed it, when,
and in how many seconds. A computation that fetches artifacts inside `store.trail()` collects
their provenance, which is how a section's record names everything it was computed from.
"""

import ast
import contextlib
import contextvars
import fcntl
import functools
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from . import __version__, runtime

REPO = Path(__file__).resolve().parent.parent
# Modules that move, cache or present results but compute none: not part of a fingerprint.
INFRASTRUCTURE = {
    "nrf",
    "nrf.store",
    "nrf.records",
    "nrf.contents",
    "nrf.options",
    "nrf.claims",
    "nrf.page",
    "nrf.cli",
    "nrf.sweep",
}
WAIT_NOTICE = 60  # seconds between "waiting for ..." messages while another process computes
_trail: contextvars.ContextVar[list | None] = contextvars.ContextVar("nrf_store_trail", default=None)


def default_root() -> Path:
    """$NRF_STORE if set, else `store/` in the checkout. Set but empty is an error: it would
    put the store in whatever folder the command runs in."""
    root = os.environ.get("NRF_STORE")
    if root == "":
        raise ValueError(
            "NRF_STORE is set but empty (the store would land in the current folder): unset it for "
            f"{REPO / 'store'}, or set it to a folder"
        )
    return Path(root) if root else REPO / "store"


def results_root() -> Path:
    """Where committed records (and the committed model zoo) live: $NRF_RESULTS, else `results/`."""
    return Path(os.environ.get("NRF_RESULTS", REPO / "results"))


def canonical(value):
    """A JSON-able value with every number as a float (1 and 1.0 key alike), tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    raise ValueError(f"store parameters must be numbers, strings, lists or mappings, got {type(value).__name__}")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """Docstrings, and the help text of option declarations (`Option(name, default, help, ...)`),
    are documentation: dropped before hashing."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Option":
            node.args = node.args[:2] + [ast.Constant("")] + node.args[3:] if len(node.args) > 2 else node.args
            node.keywords = [k for k in node.keywords if k.arg != "help"]
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_hash(source: str) -> str:
    """A hash of Python source that ignores docstrings, comments and layout."""
    return hashlib.sha256(ast.dump(_strip_docstrings(ast.parse(source))).encode()).hexdigest()[:16]


def imports_of(name: str) -> set[str]:
    """The nrf modules that module `name` imports directly."""
    tree = ast.parse(_source(name))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if node.level
                else node.module
            )
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import data`: a submodule
    return {m for m in found if m.split(".")[0] == "nrf" and _is_module(m)}


def dependencies(module: str) -> set[str]:
    """`module` and the nrf modules it imports, transitively, less the infrastructure."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name in INFRASTRUCTURE:
            continue
        seen.add(name)
        if name.split(".")[0] == "nrf":
            todo.extend(imports_of(name))
    return seen


@functools.cache
def fingerprint(module: str) -> str:
    """The code fingerprint of `module` and the nrf modules it imports, transitively."""
    parts = sorted(f"{name}:{_module_hash(name)}" for name in dependencies(module))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@functools.cache
def _module_hash(name: str) -> str:
    """code_hash of a module's source, read once per process (the code it runs)."""
    return code_hash(_source(name))


def _source(name: str) -> str:
    return Path(importlib.util.find_spec(name).origin).read_text()


def _is_package(name: str) -> bool:
    return importlib.util.find_spec(name).submodule_search_locations is not None


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):  # `from .options import Option`: Option is no module
        return False


def key(kind: str, params: dict, code: str = "") -> str:
    """A stable 16-hex-digit hash of (kind, params, where it computes, code fingerprint)."""
    text = json.dumps(
        {
            "kind": kind,
            "params": canonical(params),
            "compute": runtime.compute_id(),
            "code": code,
            "version": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _code_of(compute: Callable) -> str:
    module = getattr(compute, "__module__", None)
    return fingerprint(module) if module and module in sys.modules and module != "__main__" else ""


def path(kind: str, params: dict, compute: Callable | None = None, root: Path | None = None) -> Path:
    return Path(root or default_root()) / kind / key(kind, params, _code_of(compute) if compute else "")


def load(kind: str, params: dict, module: str, root: Path | None = None) -> dict | None:
    """The stored result of (kind, params) computed by code of `module`, or None: a lookup that
    never computes."""
    found = _load(Path(root or default_root()) / kind / key(kind, params, fingerprint(module)))
    return None if found is None else found[0]


def _load(folder: Path) -> tuple[dict, dict] | None:
    """(result, meta) of a stored artifact, or None if it is absent or fails its checksum."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        blob = (folder / "result.pt").read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ValueError("checksum mismatch")
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False), meta
    except (FileNotFoundError, NotADirectoryError):  # not stored (fetch says so when a folder is a file)
        return None
    except PermissionError as e:  # another user's artifact: say so, never discard it as corrupt
        raise ValueError(
            f"cannot read the stored artifact {folder}: {e.strerror}; a store shared by several users "
            "must be readable by all (chmod -R a+rX), or set NRF_STORE to a store of your own"
        ) from None
    except Exception as e:  # truncated JSON, bad pickle, checksum: recompute, never use
        print(f"nrf.store: discarding corrupt artifact {folder} ({type(e).__name__}: {e})")
        return None


def _save(folder: Path, kind: str, params: dict, result: dict, seconds: float) -> dict:
    """Write result atomically: into a temporary folder, then renamed into place. A full disk
    leaves no temporary folder behind and is one line (runtime.no_space)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(result, buf)
    blob = buf.getvalue()
    meta = {
        "kind": kind,
        "key": folder.name,
        "params": canonical(params),
        "version": __version__,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "created": now(),
        "hardware": runtime.hardware(),
        "compute": runtime.compute_id(),
        "commit": git_commit(),
        "seconds": seconds,
    }
    text = json.dumps(meta, indent=1, sort_keys=True)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        os.chmod(tmp, 0o777 & ~runtime.umask())  # mkdtemp makes it private; a store is shared like a data set
        (tmp / "result.pt").write_bytes(blob)
        (tmp / "meta.json").write_text(text)
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in runtime.NO_SPACE:
            raise runtime.no_space(folder.parent, len(blob) + len(text)) from None
        raise
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return meta


@contextlib.contextmanager
def trail():
    """Collect the provenance (meta.json) of every artifact fetched inside the block."""
    metas = []
    token = _trail.set(metas)
    try:
        yield metas
    finally:
        _trail.reset(token)


def fetch(kind: str, params: dict, compute: Callable[[Path], dict], root: Path | None = None) -> dict:
    """Load the result for (kind, params, compute's code), or compute, save and return it.

    `compute(workdir)` gets a scratch folder that persists until the result is saved: write
    checkpoints there and a crashed or killed run resumes from them on the next call. Processes
    that ask for the same missing result at once (parallel sweep points) compute it once: the
    others wait on a lock in the scratch folder, then load it. CPU work runs at the fixed
    thread count of `runtime.threads()`, part of the key, so a key always gives the same numbers.
    """
    folder = path(kind, params, compute, root)
    found = _load(folder)
    if found is None:
        workdir = folder.with_suffix(".work")
        try:  # a store this user cannot write says so before anything computes
            workdir.mkdir(parents=True, exist_ok=True)
            lock = open(workdir / "lock", "a+")
        except OSError as e:
            raise _unwritable(folder.parent.parent, workdir, e) from None
        with lock:  # parallel sweep points: one computes, the others wait
            _acquire(lock, f"{kind} {folder.name}")
            found = _load(folder)  # computed while this process waited
            if found is None:
                runtime.pin_threads()
                start = time.perf_counter()
                result = compute(workdir)
                found = result, _save(folder, kind, params, result, round(time.perf_counter() - start, 2))
        shutil.rmtree(workdir, ignore_errors=True)
    result, meta = found
    if (metas := _trail.get()) is not None:
        metas.append({k: meta.get(k) for k in ("kind", "key", "commit", "hardware", "compute", "created", "seconds")})
    return result


def _unwritable(root: Path, workdir: Path, error: OSError) -> ValueError:
    """The one-line error for a store where an artifact's folder cannot be made: a store (or one
    of its folders) that is a file, or one this user cannot write (permissions, read-only disk)."""
    file = next((p for p in (workdir, *workdir.parents) if p.exists() and not p.is_dir()), None)
    if file == root:
        return ValueError(f"the store {root} is a file, not a folder: set NRF_STORE to a folder")
    if file is not None:
        return ValueError(
            f"the store {root} needs {file} to be a folder, but it is a file: move it away, "
            "or set NRF_STORE to another folder"
        )
    if error.errno in runtime.NO_SPACE:
        return runtime.no_space(root, None)
    return ValueError(
        f"the store {root} is not writable ({error.strerror}: {error.filename}): "
        "set NRF_STORE to a folder you can write"
    )


def _lock_timeout() -> float:
    """$NRF_LOCK_TIMEOUT: seconds to wait for another process's computation (default: forever)."""
    value = os.environ.get("NRF_LOCK_TIMEOUT", "inf")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise ValueError(f"NRF_LOCK_TIMEOUT must be a number of seconds >= 0 (or inf), got {value!r}")
    return seconds


def _acquire(lock, what: str) -> None:
    """Take the lock of a missing artifact. While another process holds it, say which one (its
    pid, host and start, written in the lock file) every WAIT_NOTICE seconds; give up after
    $NRF_LOCK_TIMEOUT seconds if set."""
    timeout = _lock_timeout()
    start = time.monotonic()
    notice = -WAIT_NOTICE
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            waited = time.monotonic() - start
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            if waited >= timeout:
                raise ValueError(
                    f"gave up after {waited:.0f} s waiting for {what}, being computed by {holder} "
                    "(NRF_LOCK_TIMEOUT); if that process is stopped, resume or end it"
                ) from None
            if waited - notice >= WAIT_NOTICE:
                print(f"nrf.store: waiting for {what}, being computed by {holder}", flush=True)
                notice = waited
            time.sleep(min(1.0, max(timeout - waited, 0.01)))
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {now()}")
    lock.flush()


def digest(tensor: torch.Tensor) -> str:
    """A short content hash of a tensor, so results derived from it are keyed by it."""
    return hashlib.sha256(tensor.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The checkout's commit, with -dirty when its tracked files other than results/ have
    uncommitted changes: the records a run writes under results/ as it goes are not the code
    that computes them, and must not mark the run's later records dirty."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5).stdout.strip()

    try:
        head = git("rev-parse", "--short=10", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + "-dirty" * bool(changed)) or None
