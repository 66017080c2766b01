"""Data sets as uint8 NCHW tensors, and batched on-device augmentation.

Images are stored as uint8 [N, 3, H, W] on the CPU (4x smaller than float, and exact);
`to_float` maps them to [0, 1] pixel space, where every epsilon in nrf is measured.
Augmentations draw all randomness from a torch.Generator and work on whole batches on
the images' device, so they cost nothing next to a forward pass and repeat exactly.
"""

import functools
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import tarfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from nrf import runtime
from nrf.runtime import bar, write_atomic


@dataclass
class Data:
    """A labelled image set. `identity` names its exact content (a hash of x and y), so a
    result can record which data produced it and a cache can tell data sets apart."""

    x: torch.Tensor  # uint8 [N, 3, H, W], CPU
    y: torch.Tensor  # int64 [N]
    classes: list[str]
    identity: str
    fine_y: torch.Tensor | None = None  # int64 [N]: fine-grained labels (ImageNet-M10's 60 classes)
    fine_classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.y)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float images in [0, 1]."""
    if x.dtype != torch.uint8:
        raise ValueError(f"to_float: x must be uint8, got {x.dtype}")
    return x.float() / 255


def _uniform(n: int, generator: torch.Generator | None, x: torch.Tensor) -> torch.Tensor:
    """n uniform draws in [0, 1) for a batch on x's device, made on the generator's own device
    (so a CPU generator gives the same numbers whatever the device of x, and a GPU generator
    with GPU images needs no host sync)."""
    device = generator.device if generator is not None else x.device
    return torch.rand(n, generator=generator, device=device).to(x.device)


def crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of each image from its zero-padded copy (`pad` px each side) plus a random
    horizontal flip, per image, in one gather. Same dtype and device as x (uint8 or float)."""
    if x.ndim != 4:
        raise ValueError(f"crop_flip: x must be NCHW, got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"crop_flip: pad must be >= 0, got {pad}")
    n, _, h, w = x.shape
    dy = (_uniform(n, generator, x) * (2 * pad + 1)).long()
    dx = (_uniform(n, generator, x) * (2 * pad + 1)).long()
    flip = _uniform(n, generator, x) < 0.5
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [N, H] rows of the padded image
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # [N, W]
    padded = F.pad(x, (pad, pad, pad, pad))
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded[idx, :, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def resized_crop_flip(
    x: torch.Tensor,
    size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random resized crop (area fraction in `scale`, aspect ratio in `ratio`, log-uniform)
    plus a random horizontal flip, per image, as one batched bilinear grid_sample.
    Returns float [N, C, size, size] in [0, 1]. Crops too large for the image are clamped
    to it rather than re-drawn (torchvision re-draws), which keeps the batch in one pass."""
    if x.ndim != 4:
        raise ValueError(f"resized_crop_flip: x must be NCHW, got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"resized_crop_flip: size must be >= 1, got {size}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"resized_crop_flip: scale must satisfy 0 < lo <= hi <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"resized_crop_flip: ratio must satisfy 0 < lo <= hi, got {ratio}")
    xf = to_float(x) if x.dtype == torch.uint8 else x.float()
    n, _, h, w = xf.shape
    area = scale[0] + (scale[1] - scale[0]) * _uniform(n, generator, x)
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _uniform(n, generator, x)
    # crop width and height as fractions of the image's width and height
    cw = torch.sqrt(area * torch.exp(logr) * h / w).clamp(max=1.0)
    ch = torch.sqrt(area / torch.exp(logr) * w / h).clamp(max=1.0)
    # crop centre in [-1, 1] normalised coordinates, uniform over the positions that fit
    cx = (2 * _uniform(n, generator, x) - 1) * (1 - cw)
    cy = (2 * _uniform(n, generator, x) - 1) * (1 - ch)
    flip = torch.where(_uniform(n, generator, x) < 0.5, -1.0, 1.0)
    zero = torch.zeros_like(cw)
    theta = torch.stack([torch.stack([cw * flip, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1)
    grid = F.affine_grid(theta, [n, xf.shape[1], size, size], align_corners=False)
    return F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---------------------------------------------------------------------------------------------
# Loading: decode once to uint8 NCHW, cache on disk keyed by a hash of the source's content.

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# ImageNet-M10 (PAPER.md): ten super-classes of six ImageNet classes each, as indices into the
# standard 1000-class order (sorted wnids). Fine label k belongs to super-class k // 6.
M10_CLASSES = ["dog", "bird", "insect", "monkey", "car", "feline", "truck", "fruit", "fungus", "boat"]
M10_INDICES = [
    [151, 152, 153, 154, 155, 156],
    [7, 8, 9, 10, 11, 12],
    [300, 301, 302, 303, 304, 305],
    [370, 371, 372, 373, 374, 375],
    [407, 436, 468, 511, 609, 627],
    [286, 287, 288, 289, 290, 291],
    [555, 569, 675, 717, 734, 864],
    [948, 984, 987, 988, 989, 990],
    [991, 992, 993, 994, 995, 996],
    [472, 554, 576, 625, 814, 914],
]

SAMPLE = Path(__file__).with_name("sample") / "cifar10-sample.tar.gz"
KNOWN = Path(__file__).with_name("sample") / "identities.json"  # archive sha256 -> identity of each split
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CACHE_VERSION = 1  # bump when the decoded arrays for the same source would change


def full_cifar10_path() -> Path | None:
    """Where full CIFAR-10 is on this machine: $NRF_CIFAR10 if set, else the shared archive
    beside the repository (`../shared/data/cifar10-jpeg.tar.gz`) if present, else None.
    Callers decide what to do without it; nothing substitutes the sample silently."""
    if os.environ.get("NRF_CIFAR10"):
        return Path(os.environ["NRF_CIFAR10"]).expanduser()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
    return shared if shared.is_file() else None


def _cache_dir(cache_dir: str | Path | None) -> Path:
    """The folder of decoded arrays: cache_dir, else $NRF_CACHE, else ~/.cache/nrf."""
    folder = Path(cache_dir or os.environ.get("NRF_CACHE") or Path.home() / ".cache" / "nrf").expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the data cache {folder} is a file, not a folder: set NRF_CACHE to a folder")
    return folder


def _identity(prefix: str, x: torch.Tensor, y: torch.Tensor, fine_y: torch.Tensor | None = None) -> str:
    """prefix + 8 hex digits of sha256 over the decoded content: the same data gives the same
    identity on any machine, whatever file it came from."""
    h = hashlib.sha256(repr((tuple(x.shape), x.dtype)).encode())
    for t in (x, y) if fine_y is None else (x, y, fine_y):
        h.update(t.contiguous().numpy())
    return f"{prefix}-{h.hexdigest()[:8]}"


def _cache_file(cache_dir: str | Path | None, prefix: str, key: str) -> Path:
    digest = hashlib.sha256(repr([_CACHE_VERSION, prefix, key]).encode()).hexdigest()[:16]
    return _cache_dir(cache_dir) / f"{prefix}-{digest}.pt"


def _cached(cache_dir: str | Path | None, prefix: str, key: str, build) -> Data:
    """Data from the cache file for `key` (a hash of the source's content), or build() it and
    write the cache atomically, with its identity in a small file beside it (_cached_identity).
    A cache file whose content does not hash to its stored identity is rebuilt."""
    path = _cache_file(cache_dir, prefix, key)
    if path.is_file():
        try:
            data = Data(**torch.load(path, weights_only=True))
            if _identity(prefix, data.x, data.y, data.fine_y) == data.identity:
                if not path.with_suffix(".identity").is_file():
                    _write_cache(path.with_suffix(".identity"), data.identity.encode())
                return data
        except Exception:  # unreadable or truncated: rebuild below
            pass
    data = build()
    buf = io.BytesIO()
    torch.save(vars(data), buf)  # in memory first: a full disk is then one clear error, not torch's
    _write_cache(path, buf.getvalue())
    _write_cache(path.with_suffix(".identity"), data.identity.encode())
    return data


def _cached_identity(cache_dir: str | Path | None, prefix: str, key: str) -> str | None:
    """The identity of the data cached for `key`, without loading it, or None if not cached."""
    try:
        found = _cache_file(cache_dir, prefix, key).with_suffix(".identity").read_text()
    except FileNotFoundError:
        return None
    return found if found.startswith(f"{prefix}-") else None


def _write_cache(path: Path, blob: bytes) -> None:
    try:
        write_atomic(path, blob)
    except OSError as e:  # a full disk is write_atomic's ValueError already
        raise ValueError(
            f"cannot write the data cache {path.parent} ({e.strerror}): set NRF_CACHE to a folder you can write"
        ) from None


def _content_key(root: Path, files) -> str:
    """sha256 over the names (relative to root) and bytes of `files`: what the decoded arrays
    depend on, so a file rewritten in place (even at the same size, its mtime put back) is
    decoded again, and a copy elsewhere is not."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root).as_posix()}\0{_file_sha256(f, _signature(f))}\n".encode())
    return h.hexdigest()


def _signature(f: Path) -> tuple:
    """What changes whenever a file's content does, ctime included (set by the system on every
    write and on every mtime change; no one can set it back)."""
    s = f.stat()
    return s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns


@functools.lru_cache(maxsize=None)  # noqa: UP033 (kept until the models retrain: a change here re-keys them)
def _file_sha256(f: Path, signature: tuple) -> str:
    """sha256 of a file's bytes, hashed once per process while its signature is unchanged (the
    lookups of data identities repeat)."""
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        while chunk := fh.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _read_tree(source: Path, split: str) -> list[tuple[str, str, bytes]]:
    """(class, file name, encoded bytes) of every image at `<split>/<class>/<file>` in an
    ImageFolder tree or in a .tar(.gz)/.tgz/.zip of one (optionally under one top folder),
    sorted by class then file name so every container gives the same order. Two such trees
    (under two top folders), or one image twice, are ambiguous: an error, never loaded twice."""
    items, splits, tops = [], set(), set()

    def take(name: str, read):
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and name.lower().endswith(_IMAGE_SUFFIXES):
            splits.add(parts[-3])
            if parts[-3] == split:
                tops.add("/".join(parts[:-3]) + "/")
                items.append((parts[-2], parts[-1], read()))

    if source.is_dir():
        if not (source / split).is_dir():
            raise FileNotFoundError(f"no '{split}' folder in {source}: expected {source}/{split}/<class>/<image>")
        for f in (source / split).glob("*/*"):
            if f.is_file():
                take(f"{split}/{f.parent.name}/{f.name}", f.read_bytes)
    else:
        try:
            if source.name.lower().endswith(".zip"):
                with zipfile.ZipFile(source) as z:
                    for info in z.infolist():
                        if not info.is_dir():
                            take(info.filename, lambda: z.read(info))  # noqa: B023 (take calls it at once)
            else:
                with tarfile.open(source, "r:*") as tar:
                    for m in tar:
                        if m.isfile():
                            take(m.name, lambda: tar.extractfile(m).read())  # noqa: B023 (take calls it at once)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:  # truncated or not one
            raise ValueError(
                f"cannot read the archive {source}: {type(e).__name__}: {str(e).splitlines()[0]} "
                "(expected a complete .tar.gz, .tgz, .tar or .zip of <split>/<class>/<image>)"
            ) from None
    if not items:
        raise ValueError(
            f"no images at '{split}/<class>/<image>' in {source} (image splits found: {sorted(splits) or 'none'})"
        )
    if len(tops) > 1:
        raise ValueError(
            f"{source} is ambiguous: it holds '{split}/<class>/<image>' under {len(tops)} folders "
            f"({', '.join(sorted(tops))}); expected one tree, optionally under one top folder"
        )
    items.sort(key=lambda t: (t[0], t[1]))
    twice = next((f"{split}/{a[0]}/{a[1]}" for a, b in zip(items, items[1:]) if a[:2] == b[:2]), None)
    if twice:
        raise ValueError(f"{source} is ambiguous: it holds {twice} twice")
    return items


def _decode(data: bytes | Path, origin: str, size: int | None = None) -> torch.Tensor:
    """Encoded JPEG/PNG (bytes, or a file read in place) -> uint8 [3, H, W] RGB; with `size`, the
    shorter side resized (bilinear, antialiased) to `size` and the centre size x size cropped
    (ImageNet evaluation)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            im = im.convert("RGB")
    except Exception as e:
        raise ValueError(f"cannot read image {origin}: {e}") from e
    if size is not None:
        w, h = im.size
        w, h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        left, top = int(round((w - size) / 2)), int(round((h - size) / 2))
        im = im.resize((w, h), Image.BILINEAR).crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)


def _decode_all(
    items: list[tuple[str, bytes | Path]], shape: tuple[int, int, int], size: int | None, desc: str
) -> torch.Tensor:
    """Decode (origin, bytes or file) pairs into one preallocated uint8 [N, *shape] tensor, in chunks
    over a thread pool (Pillow releases the GIL while it decodes and resizes)."""
    x = torch.empty(len(items), *shape, dtype=torch.uint8)
    chunk = 256

    def run(lo):
        for i in range(lo, min(lo + chunk, len(items))):
            img = _decode(items[i][1], items[i][0], size)
            if tuple(img.shape) != shape:
                raise ValueError(f"image {items[i][0]} has shape {tuple(img.shape)}, expected {shape}")
            x[i] = img
        return min(chunk, len(items) - lo)

    with (
        ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool,
        bar(total=len(items), desc=desc, leave=False) as decoded,
    ):
        for done in pool.map(run, range(0, len(items), chunk)):
            decoded.update(done)
    return x


def _check_classes(found: list[str], where) -> None:
    if found != CIFAR10_CLASSES:
        raise ValueError(
            f"{where}: found {len(found)} classes {found}, "
            f"expected the {len(CIFAR10_CLASSES)} CIFAR-10 classes {CIFAR10_CLASSES}"
        )


def _cifar_from_tree(source: Path, split: str, prefix: str) -> Data:
    items = _read_tree(source, split)
    classes = sorted({c for c, _, _ in items})
    _check_classes(classes, f"{source} ({split})")
    label = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([label[c] for c, _, _ in items], dtype=torch.int64)
    where = f"{source}{'/' if source.is_dir() else ':'}{split}"
    items = [(f"{where}/{c}/{n}", b) for c, n, b in items]
    x = _decode_all(items, (3, 32, 32), None, f"decoding CIFAR-10 {split}")
    return Data(x, y, classes, _identity(prefix, x, y))


def _cifar_from_pickles(folder: Path, split: str, prefix: str) -> Data:
    """The pickled python-version batches (as torchvision downloads them), sorted stably by
    label so that they line up with an ImageFolder tree written in the same order."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"missing CIFAR-10 batch file {folder / name}")
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    with open(folder / "batches.meta", "rb") as f:
        classes = [c.decode() for c in pickle.load(f, encoding="bytes")[b"label_names"]]
    _check_classes(classes, folder / "batches.meta")
    x, y = torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
    order = torch.sort(y, stable=True).indices
    x, y = x[order].contiguous(), y[order].contiguous()
    return Data(x, y, classes, _identity(prefix, x, y))


def load_cifar10(
    source: str | Path = "sample", split: str = "train", download: bool = False, cache_dir: str | Path | None = None
) -> Data:
    """CIFAR-10 as uint8 [N, 3, 32, 32], labels in the standard class order, grouped by class.

    source: "sample" (the embedded class-balanced sample, nrf/sample/), a torchvision root
    folder holding `cifar-10-batches-py` (downloaded there only if download=True), an
    ImageFolder tree `<root>/<split>/<class>/<image>`, or a .tar.gz/.tgz/.tar/.zip of one.
    Decoded arrays are cached in cache_dir ($NRF_CACHE, else ~/.cache/nrf), keyed by a hash of
    the source's content."""
    prefix, key, build = _cifar10_source(source, split, download)
    return _cached(cache_dir, prefix, key, build)


def cifar10_identity(source: str | Path = "sample", split: str = "train", cache_dir: str | Path | None = None) -> str:
    """load_cifar10(source, split).identity, without loading the arrays: the source's content is
    hashed and its identity looked up, in KNOWN (the embedded sample and full CIFAR-10's JPEG
    archive), else beside the cached arrays (decoded once, the first time). How a result is tied
    to the data it read, cheaply."""
    prefix, key, build = _cifar10_source(source, split, False)
    known = _known_archives().get(key, {}).get(split)  # the sample and its source: no decoding, no cache
    if known:
        return f"{prefix}-{known}"
    return _cached_identity(cache_dir, prefix, key) or _cached(cache_dir, prefix, key, build).identity


@functools.cache
def _known_archives() -> dict:
    return json.loads(KNOWN.read_text())["archives"]


def _cifar10_source(source: str | Path, split: str, download: bool) -> tuple:
    """(prefix, content key, build) of what load_cifar10 reads: the cache is keyed by the key,
    and build() decodes the source."""
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    if str(source) == "sample":
        path, prefix = SAMPLE, f"cifar10-sample-{split}"
        if not path.is_file():
            raise FileNotFoundError(f"the embedded sample {path} is missing from this installation")
    else:
        path, prefix = Path(source).expanduser().resolve(), f"cifar10-{split}"
    batches = path / "cifar-10-batches-py"
    if path.is_file() and _is_archive(path):  # keyed by its sha256 (what KNOWN lists)
        return prefix, _file_sha256(path, _signature(path)), lambda: _cifar_from_tree(path, split, prefix)
    if path.is_dir() and (path / split).is_dir():
        files = sorted(p for p in (path / split).glob("*/*") if p.is_file())
        return prefix, _content_key(path, files), lambda: _cifar_from_tree(path, split, prefix)
    if batches.is_dir() or download and not path.is_file():
        if not batches.is_dir():  # download=True: fetch only when asked
            torchvision.datasets.CIFAR10(str(path), train=split == "train", download=True)
        key = _content_key(batches, sorted(p for p in batches.iterdir() if p.is_file()))
        return prefix, key, lambda: _cifar_from_pickles(batches, split, prefix)
    if not path.exists():
        raise FileNotFoundError(f"load_cifar10: no such file or folder {path} (download=True downloads CIFAR-10 there)")
    raise ValueError(
        f"load_cifar10: cannot tell the layout of {path}: expected 'sample', a folder holding "
        f"cifar-10-batches-py, an ImageFolder tree with a '{split}' folder, "
        f"or a {'/'.join(_ARCHIVE_SUFFIXES)} archive of one"
    )


def load_imagenet_m10(
    root: str | Path, split: str = "val", size: int = 224, cache_dir: str | Path | None = None
) -> Data:
    """ImageNet-M10 from a standard ImageNet tree `<root>/<split>/<wnid>/*.JPEG` (all 1000 wnid
    folders): the 60 classes of M10_INDICES, resized (shorter side) and centre-cropped to
    size x size. y is the super-class (M10_CLASSES), fine_y the class 0..59 (named by wnid)."""
    if split not in ("train", "val"):
        raise ValueError(f"load_imagenet_m10: split must be 'train' or 'val', got {split!r}")
    if size < 1:
        raise ValueError(f"load_imagenet_m10: size must be >= 1, got {size}")
    folder = Path(root).expanduser().resolve() / split
    if not folder.is_dir():
        raise FileNotFoundError(f"load_imagenet_m10: no folder {folder}, expected {root}/{split}/<wnid>/<image>")
    wnids = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(wnids) != 1000:
        raise ValueError(
            f"load_imagenet_m10: found {len(wnids)} class folders in {folder}, expected the 1000 ImageNet wnid folders"
        )
    fine_classes = [wnids[i] for group in M10_INDICES for i in group]
    files = [
        (k, f)
        for k, wnid in enumerate(fine_classes)
        for f in sorted((folder / wnid).iterdir())
        if f.is_file() and f.name.lower().endswith(_IMAGE_SUFFIXES)
    ]
    if not files:
        raise ValueError(f"load_imagenet_m10: no images in the 60 ImageNet-M10 class folders of {folder}")
    prefix = f"imagenet-m10-{split}{size}"

    def build():
        items = [(str(f), f) for _, f in files]
        x = _decode_all(items, (3, size, size), size, f"decoding ImageNet-M10 {split}")
        fine_y = torch.tensor([k for k, _ in files], dtype=torch.int64)
        y = fine_y // 6
        return Data(x, y, list(M10_CLASSES), _identity(prefix, x, y, fine_y), fine_y, fine_classes)

    return _cached(cache_dir, prefix, _content_key(folder, [f for _, f in files]), build)


# ---------------------------------------------------------------------------------------------
# The embedded sample


def cut_sample(
    source: str | Path, out: str | Path, train_per_class: int = 500, test_per_class: int = 100, seed: int = 0
) -> Path:
    """Write a class-balanced random subset of an ImageFolder tree or archive to `out` as a
    .tar.gz of the original encoded bytes (no re-encoding). Sorted members, zero mtimes and no
    file name in the gzip header make the same arguments give the same bytes."""
    for name, k in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"cut_sample: {name} must be a positive integer, got {k!r}")
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"cut_sample: no such file or folder {source}")
    if not (source.is_dir() or _is_archive(source)):
        raise ValueError(
            f"cut_sample: source must be an ImageFolder folder or a {'/'.join(_ARCHIVE_SUFFIXES)} archive, got {source}"
        )
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise ValueError(f"cut_sample: out must end in .tar.gz or .tgz, got {out}")
    if out.resolve() == source.resolve() or out.exists() and out.samefile(source):
        raise ValueError(f"cut_sample: out {out} is the source: write the sample to another file")
    g = runtime.generator(seed)
    members = []
    for split, k in (("train", train_per_class), ("test", test_per_class)):
        by_class: dict[str, list] = {}
        for c, n, b in _read_tree(source, split):
            by_class.setdefault(c, []).append((n, b))
        for c, files in sorted(by_class.items()):
            if k > len(files):
                raise ValueError(
                    f"cut_sample: {split}_per_class={k} but class {c!r} of {split} has only {len(files)} images"
                )
            for i in sorted(torch.randperm(len(files), generator=g)[:k].tolist()):
                members.append((f"{split}/{c}/{files[i][0]}", files[i][1]))

    def write(f):
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name, data in sorted(members):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))

    return write_atomic(out, write)
