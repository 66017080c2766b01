"""Devices, threads, seeds, provenance and atomic writes: what every run needs about where it runs."""

import contextlib
import contextvars
import errno
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable  # noqa: UP035 (kept until the models retrain: a change here re-keys them)

import torch
from tqdm.auto import tqdm

DEFAULT_THREADS = 2  # CPU results depend on the thread count: fixed, so a run is repeatable anywhere
PRECISIONS = ("fp32", "bf16")
# The precision of the forward and backward passes in the code that runs inside `precision(...)`:
# records.get sets the profile's (options.PRECISION) around a section's run; outside, fp32.
_precision: contextvars.ContextVar[str] = contextvars.ContextVar("nrf_precision", default="fp32")
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("nrf_quiet", default=False)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU; NRF_DEVICE (cpu, cuda or cuda:N) overrides, checked."""
    name = os.environ.get("NRF_DEVICE")
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"NRF_DEVICE must be cpu, cuda or cuda:N, got {name!r}")
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= found:
        raise ValueError(f"NRF_DEVICE={name} asks for a CUDA GPU but torch sees {found}; use NRF_DEVICE=cpu")
    return device


def threads() -> int:
    """The CPU thread count every computation runs with: $NRF_THREADS, else DEFAULT_THREADS."""
    value = os.environ.get("NRF_THREADS", str(DEFAULT_THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NRF_THREADS must be a positive integer, got {value!r}")
    return int(value)


def pin_threads() -> None:
    """Run torch's CPU work on threads() threads (the same numbers on every machine)."""
    if torch.get_num_threads() != threads():
        torch.set_num_threads(threads())


def compute_id() -> str:
    """What a result's numbers depend on besides its parameters: the device kind, on the CPU the
    thread count, and the precision, so that fp32 and bf16 results never share a key."""
    device = default_device()
    where = f"cpu/{threads()} threads" if device.type == "cpu" else device.type
    return f"{where}/{_precision.get()}"


@contextlib.contextmanager
def precision(name: str):
    """Run the enclosed computation in precision `name`: "fp32", or "bf16" (autocast: matrix
    products and convolutions in bfloat16, losses and updates in fp32; on the CPU as on the GPU,
    and on a CPU without bf16 instructions it is slower, not different). The same key gives the
    same numbers at the same thread count in either precision."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {name!r}")
    token = _precision.set(name)
    try:
        yield
    finally:
        _precision.reset(token)


def current_precision() -> str:
    """The precision the computation running now uses (see `precision`)."""
    return _precision.get()


def autocast(device: torch.device):
    """bf16 autocast where the running computation's precision is bf16, else a no-op (exact fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=_precision.get() == "bf16")


@contextlib.contextmanager
def quiet():
    """No progress bars from the enclosed computation (`bar`): the book's pages and the tests."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def bar(*args, **kwargs) -> tqdm:
    """A tqdm progress bar for long work, hidden inside `quiet()` (and everywhere by tqdm's own
    environment switch TQDM_DISABLE=1)."""
    if _quiet.get():
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)


def device_of(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on (where its inputs must go)."""
    return next(model.parameters()).device


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """The model in eval mode for the enclosed code, its mode put back after (attacks and
    measurements see running BN statistics, per image); yields the model's device."""
    was_training = model.training
    model.eval()
    try:
        yield device_of(model)
    finally:
        model.train(was_training)


def device_batch(device: torch.device | str) -> int:
    """Images per forward pass for batched evaluation and for the many-perturbations solver:
    large on a GPU (fills it), moderate on the CPU (bounded memory, same speed)."""
    return 4096 if torch.device(device).type == "cuda" else 1024


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed`: every random draw in nrf goes through one."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def seed_all(seed: int) -> None:
    """Seed torch's global generators too (weight initialisation draws from them)."""
    torch.manual_seed(int(seed))


def hardware(device: torch.device | None = None) -> str:
    """One line naming the hardware and software that produced a result, for provenance."""
    device = device or default_device()
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"CPU ({cpu_name()}, {threads()} of {os.cpu_count()} cores)"
    return f"{what}, torch {torch.__version__}"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (from /proc/cpuinfo on Linux; empty elsewhere): whether it has
    bf16 instructions (avx512_bf16, amx_bf16) decides how much bf16 autocast gains."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, content: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write `content` (bytes, or a function writing to a binary file) through a temporary file
    of its own in the same folder, then rename it into place: a kill mid-write never leaves a
    torn file, and two writers never share a temporary file. A full disk is one line naming the
    folder and the space needed (no_space), with nothing left behind."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(content) if isinstance(content, bytes) else content(f)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; caches and stores are shared
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise no_space(path.parent, len(content) if isinstance(content, bytes) else None) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or a full quota


def no_space(folder, needed: int | None) -> ValueError:
    """The one-line error for a write that found its disk full: where, and how much it needed."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    need = "" if needed is None else f" needs {needed / 2**20:.1f} MiB,"
    return ValueError(
        f"no space left in {folder}: writing there{need} {free}; "
        "free some space there (or set NRF_STORE, NRF_CACHE or NRF_RESULTS to a larger disk)"
    )
