import hashlib
import io
import os
import pickle
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from nrf import cli, data
from nrf.data import CIFAR10_CLASSES


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test caches into its own folder, never into ~/.cache."""
    monkeypatch.setenv("NRF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def png(arr: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless encoding, so decoded pixels equal the array exactly."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


@pytest.fixture(scope="module")
def fake():
    """A tiny CIFAR-10: 3 train and 2 test 32x32 images per class, as HWC arrays by split."""
    rng = np.random.default_rng(0)
    return {
        split: [rng.integers(0, 256, (k, 32, 32, 3), dtype=np.uint8) for _ in CIFAR10_CLASSES]
        for split, k in (("train", 3), ("test", 2))
    }


def write_tree(root, fake, classes=CIFAR10_CLASSES):
    for split, per_class in fake.items():
        for c, imgs in zip(classes, per_class):
            (root / split / c).mkdir(parents=True)
            for i, img in enumerate(imgs):
                (root / split / c / f"{i:04d}.png").write_bytes(png(img))
    return root


def write_pickles(root, fake):
    """The torchvision layout: classes interleaved as in the real batches; within a class, the
    images in the tree's order (the loader sorts stably by label)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs = np.concatenate(fake[split])  # class-major
        ys = np.repeat(np.arange(10), len(fake[split][0]))
        order = np.arange(len(ys)).reshape(10, -1).T.flatten()  # round robin over the classes
        for part in np.array_split(order, len(names)):
            batch = {b"data": xs[part].transpose(0, 3, 1, 2).reshape(len(part), -1), b"labels": ys[part].tolist()}
            (folder / names.pop(0)).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    return root


def expected(fake, split):
    x = torch.from_numpy(np.concatenate(fake[split])).permute(0, 3, 1, 2)
    return x, torch.arange(10).repeat_interleave(len(fake[split][0]))


# --- the embedded sample --------------------------------------------------------------------


def test_sample_loads_balanced_and_stable(tmp_path, monkeypatch):
    train = data.load_cifar10("sample", "train")
    test = data.load_cifar10("sample", "test")
    assert train.x.shape == (5000, 3, 32, 32) and test.x.shape == (1000, 3, 32, 32)
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    assert train.y.bincount().tolist() == [500] * 10 and test.y.bincount().tolist() == [100] * 10
    assert train.classes == CIFAR10_CLASSES and train.fine_y is None
    assert train.identity.startswith("cifar10-sample-train-") and train.identity != test.identity
    # a fresh decode elsewhere gives the same identity; a second load is a cache hit
    assert data.load_cifar10("sample", "test", cache_dir=tmp_path / "other").identity == test.identity
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded despite a cached copy"))
    again = data.load_cifar10("sample", "train")
    assert again.identity == train.identity and torch.equal(again.x, train.x)


def test_corrupt_cache_is_rebuilt(cache):
    first = data.load_cifar10("sample", "test")
    (path,) = cache.glob("cifar10-sample-test-*.pt")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert data.load_cifar10("sample", "test").identity == first.identity
    blob = torch.load(path, weights_only=True)
    blob["x"][0, 0, 0, 0] ^= 1  # readable but wrong content
    torch.save(blob, path)
    again = data.load_cifar10("sample", "test")
    assert torch.equal(again.x, first.x) and again.identity == first.identity


# --- every layout gives the same arrays -----------------------------------------------------


def test_layouts_agree(tmp_path, fake):
    tree = write_tree(tmp_path / "tree", fake)
    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tar:
        tar.add(tree, arcname="cifar")  # under a top folder, members in filesystem order
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        for f in sorted(tree.rglob("*.png"), reverse=True):
            z.write(f, f.relative_to(tree).as_posix())
    pickles = write_pickles(tmp_path / "tv", fake)
    for split in ("train", "test"):
        x, y = expected(fake, split)
        sources = (tree, tmp_path / "c.tar.gz", tmp_path / "c.zip", pickles)
        loaded = [data.load_cifar10(s, split) for s in sources]
        for d in loaded:
            assert torch.equal(d.x, x) and torch.equal(d.y, y) and d.classes == CIFAR10_CLASSES
            assert d.identity == loaded[0].identity and d.identity.startswith(f"cifar10-{split}-")
        other = data.load_cifar10(tree, "test" if split == "train" else "train")
        assert loaded[0].identity != other.identity


def test_cache_follows_source_changes(tmp_path, fake):
    tree = write_tree(tmp_path / "tree", fake)
    before = data.load_cifar10(tree, "test")
    img = fake["test"][0][0].copy()
    img[0, 0] = 255 - img[0, 0]
    edited = tree / "test" / "airplane" / "0000.png"
    old = edited.stat().st_mtime_ns
    edited.write_bytes(png(img))
    os.utime(edited, ns=(old + 10**9, old + 10**9))  # an edit a second later, whatever the clock's tick
    after = data.load_cifar10(tree, "test")
    assert after.identity != before.identity and after.x[0, :, 0, 0].tolist() == img[0, 0].tolist()


def test_cache_is_keyed_by_content_not_stat(tmp_path, fake):
    """An image rewritten at the same size with its mtime put back is decoded again (a cache
    keyed by size and mtime served the old pixels); a copy elsewhere is a cache hit."""
    tree = write_tree(tmp_path / "tree", fake)
    edited = tree / "test" / "cat" / "0001.png"
    edited.write_bytes(png(fake["test"][3][1], compress_level=0))  # stored, not deflated: size = f(shape)
    before = data.load_cifar10(tree, "test")
    img = fake["test"][3][1].copy()
    img[5, 5] = 255 - img[5, 5]
    old = edited.stat()
    edited.write_bytes(png(img, compress_level=0))
    os.utime(edited, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert edited.stat().st_size == old.st_size and edited.stat().st_mtime_ns == old.st_mtime_ns
    after = data.load_cifar10(tree, "test")
    assert after.identity != before.identity and after.x[7, :, 5, 5].tolist() == img[5, 5].tolist()
    assert data.cifar10_identity(tree, "test") == after.identity
    shutil.copytree(tree, tmp_path / "copy")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("a copy of cached data was decoded again"))
        assert data.load_cifar10(tmp_path / "copy", "test").identity == after.identity


def test_identity_without_loading(tmp_path, fake, monkeypatch):
    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tar:
        tar.add(write_tree(tmp_path / "tree", fake), arcname="cifar")
    first = data.cifar10_identity(tmp_path / "c.tar.gz", "train")  # decoded (and cached) the first time
    assert first == data.load_cifar10(tmp_path / "c.tar.gz", "train").identity
    assert data.cifar10_identity(tmp_path / "tree", "train") == first  # the same images in a folder
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded to learn an identity"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("loaded the arrays to learn an identity"))
    assert data.cifar10_identity(tmp_path / "c.tar.gz", "train") == first
    assert data.cifar10_identity(tmp_path / "tree", "train") == first


def test_two_trees_in_one_source_are_ambiguous(tmp_path, fake):
    a, b = write_tree(tmp_path / "a", fake), write_tree(tmp_path / "b", fake)
    with tarfile.open(tmp_path / "two.tar.gz", "w:gz") as tar:  # tar czf two.tar.gz a b
        tar.add(a, arcname="a")
        tar.add(b, arcname="b")
    with pytest.raises(
        ValueError,
        match=r"two.tar.gz is ambiguous: it holds 'train/<class>/<image>' under 2 "
        r"folders \(a/, b/\)",
    ):
        data.load_cifar10(tmp_path / "two.tar.gz", "train")
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as z:
        for f in sorted(a.rglob("*.png")):
            z.write(f, f.relative_to(a).as_posix())
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.write(a / "test" / "dog" / "0001.png", "test/dog/0001.png")
    with pytest.raises(ValueError, match="holds test/dog/0001.png twice"):
        data.load_cifar10(tmp_path / "twice.zip", "test")
    (tmp_path / "both").mkdir()
    a.rename(tmp_path / "both" / "a")
    b.rename(tmp_path / "both" / "b")
    with pytest.raises(ValueError, match="cannot tell the layout"):  # a folder: one tree at its top, or none
        data.load_cifar10(tmp_path / "both", "train")


def test_a_full_cache_disk_is_one_line_and_leaves_nothing(cache, full_disk):
    with pytest.raises(ValueError, match=r"no space left in .*cache: writing there needs 2.9 MiB") as e:
        data.load_cifar10("sample", "test")
    assert "\n" not in str(e.value) and list(cache.iterdir()) == []


def test_cache_folder_must_be_a_folder(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NRF_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"the data cache .*file is a file, not a folder: set NRF_CACHE"):
        data.load_cifar10("sample", "test")


# --- bad input fails early and says what it expected ----------------------------------------


def test_bad_cifar_inputs(tmp_path, fake):
    with pytest.raises(ValueError, match="split"):
        data.load_cifar10("sample", "val")
    with pytest.raises(FileNotFoundError, match="nope"):
        data.load_cifar10(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the layout"):
        data.load_cifar10(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="cannot tell the layout"):
        data.load_cifar10(tmp_path / "notes.txt")

    nine = write_tree(tmp_path / "nine", {"train": fake["train"][:9]})
    with pytest.raises(ValueError, match="found 9 classes.*expected the 10"):
        data.load_cifar10(nine, "train")

    tree = write_tree(tmp_path / "tree", fake)
    with tarfile.open(tmp_path / "train-only.tar", "w") as tar:
        tar.add(tree / "train", arcname="train")
    with pytest.raises(ValueError, match=r"no images at 'test/.*found: \['train'\]"):
        data.load_cifar10(tmp_path / "train-only.tar", "test")

    (tree / "test" / "cat" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*test/cat/0001.png"):
        data.load_cifar10(tree, "test")
    (tree / "test" / "cat" / "0001.png").write_bytes(png(np.zeros((31, 32, 3), np.uint8)))
    with pytest.raises(ValueError, match=r"test/cat/0001.png has shape \(3, 31, 32\), expected \(3, 32, 32\)"):
        data.load_cifar10(tree, "test")

    pickles = write_pickles(tmp_path / "tv", fake)
    (pickles / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.load_cifar10(pickles, "train")


def test_broken_archives_are_one_line_naming_the_file(tmp_path, fake):
    tree = write_tree(tmp_path / "tree", fake)
    with tarfile.open(tmp_path / "whole.tar.gz", "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
    blob = (tmp_path / "whole.tar.gz").read_bytes()
    (tmp_path / "truncated.tar.gz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "garbage.tar.gz").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "garbage.zip").write_bytes(bytes(range(256)) * 20)
    for name in ("truncated.tar.gz", "garbage.tar.gz", "garbage.zip"):
        with pytest.raises(ValueError, match=f"cannot read the archive .*{name}") as e:
            data.load_cifar10(tmp_path / name, "train")
        assert "\n" not in str(e.value)


def test_full_cifar10_path(monkeypatch, tmp_path):
    monkeypatch.setenv("NRF_CIFAR10", str(tmp_path / "c.tar.gz"))
    assert data.full_cifar10_path() == tmp_path / "c.tar.gz"


@pytest.mark.skipif(data.full_cifar10_path() is None, reason="full CIFAR-10 not on this machine")
def test_full_cifar10_test_split():
    d = data.load_cifar10(data.full_cifar10_path(), "test")
    assert d.x.shape == (10000, 3, 32, 32) and d.y.bincount().tolist() == [1000] * 10


# --- augmentation ---------------------------------------------------------------------------


def images(n=64, h=8, w=10):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_flip(dtype):
    x = images().to(dtype)
    out = data.crop_flip(x, pad=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.equal(out, data.crop_flip(x, pad=2, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(out, data.crop_flip(x, pad=2, generator=torch.Generator().manual_seed(2)))
    # every output is a window of the zero-padded image, flipped or not; both kinds occur
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    windows = padded.unfold(2, 8, 1).unfold(3, 10, 1).permute(0, 2, 3, 1, 4, 5)  # [N, 5, 5, C, H, W]
    same = (windows == out[:, None, None]).flatten(3).all(-1).flatten(1).any(1)
    flipped = (windows.flip(-1) == out[:, None, None]).flatten(3).all(-1).flatten(1).any(1)
    assert (same | flipped).all() and same.any() and flipped.any()


def test_crop_flip_without_offset():
    x = images()
    out = data.crop_flip(x, pad=0, generator=torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert (same | flipped).all() and same.any() and flipped.any()
    assert not torch.equal(x, x.flip(3))


def test_bad_augment_inputs():
    with pytest.raises(ValueError, match="pad"):
        data.crop_flip(images(), pad=-1)
    with pytest.raises(ValueError, match="NCHW"):
        data.crop_flip(images()[0])
    with pytest.raises(ValueError, match="scale"):
        data.resized_crop_flip(images(), 8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="ratio"):
        data.resized_crop_flip(images(), 8, ratio=(0, 1))
    with pytest.raises(ValueError, match="uint8"):
        data.to_float(images().float())


def test_resized_crop_flip():
    x = images(h=12, w=12)
    out = data.resized_crop_flip(x, size=7, generator=torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 7, 7) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, data.resized_crop_flip(x, size=7, generator=torch.Generator().manual_seed(0)))
    # the whole image at its own size is the image itself, flipped or not
    whole = data.resized_crop_flip(x, size=12, scale=(1, 1), ratio=(1, 1), generator=torch.Generator().manual_seed(0))
    xf = data.to_float(x)
    same = (whole - xf).abs().flatten(1).amax(1) < 1e-5
    flipped = (whole - xf.flip(3)).abs().flatten(1).amax(1) < 1e-5
    assert (same | flipped).all() and same.any() and flipped.any()
    # a small crop of a left-dark right-bright image is no longer the whole image
    ramp = torch.linspace(0, 1, 12).expand(4, 3, 12, 12)
    small = data.resized_crop_flip(ramp, size=12, scale=(0.1, 0.1), generator=torch.Generator().manual_seed(0))
    assert (small.amax((1, 2, 3)) - small.amin((1, 2, 3)) < 0.6).all()


# --- ImageNet-M10 ---------------------------------------------------------------------------


def test_imagenet_m10(tmp_path):
    val = tmp_path / "val"
    wnids = [f"n{i:08d}" for i in range(1000)]
    for w in wnids:
        (val / w).mkdir(parents=True)
    red, blue = np.zeros((40, 60, 3), np.uint8), np.zeros((70, 50, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    for idx in (151, 996, 914, 0):  # dog (fine 0), fungus (fine 53), boat (fine 59), not in M10
        (val / wnids[idx] / "a.JPEG").write_bytes(png(red))  # ImageNet has PNGs named .JPEG too
        (val / wnids[idx] / "b.png").write_bytes(png(blue))
    d = data.load_imagenet_m10(tmp_path, "val", size=16)
    assert d.x.shape == (6, 3, 16, 16) and d.x.dtype == torch.uint8
    assert d.fine_y.tolist() == [0, 0, 53, 53, 59, 59] and d.y.tolist() == [0, 0, 8, 8, 9, 9]
    assert d.classes == data.M10_CLASSES and d.fine_classes[0] == "n00000151" and len(d.fine_classes) == 60
    assert d.x[0, 0].eq(200).all() and d.x[1, 2].eq(200).all() and d.x[1, 0].eq(0).all()
    assert d.identity.startswith("imagenet-m10-val16-")
    assert data.load_imagenet_m10(tmp_path, "val", size=16).identity == d.identity

    with pytest.raises(ValueError, match="split"):
        data.load_imagenet_m10(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="train"):
        data.load_imagenet_m10(tmp_path, "train")
    (val / wnids[5]).rmdir()
    with pytest.raises(ValueError, match="found 999 class folders.*expected the 1000"):
        data.load_imagenet_m10(tmp_path, "val")


# --- the sample cutter ----------------------------------------------------------------------


def test_cut_sample(tmp_path, fake):
    tree = write_tree(tmp_path / "tree", fake)
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    data.cut_sample(tree, a, train_per_class=2, test_per_class=1, seed=3)
    args = "--train-per-class 2 --test-per-class 1 --seed 3".split()
    cli.main(["cut-sample", "--source", str(tree), "--out", str(b), *args])
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with tarfile.open(a) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members) and len(members) == 30
        assert all(m.mtime == 0 for m in members)
        assert all(tar.extractfile(m).read() == (tree / m.name).read_bytes() for m in members)  # original bytes
    d = data.load_cifar10(a, "train")
    assert d.y.bincount().tolist() == [2] * 10
    data.cut_sample(tree, tmp_path / "c.tar.gz", train_per_class=2, test_per_class=1, seed=4)
    assert a.read_bytes() != (tmp_path / "c.tar.gz").read_bytes()

    with pytest.raises(ValueError, match="train_per_class=4 but class 'airplane' of train has only 3"):
        data.cut_sample(tree, tmp_path / "d.tar.gz", train_per_class=4)
    with pytest.raises(ValueError, match="test_per_class"):
        data.cut_sample(tree, tmp_path / "d.tar.gz", test_per_class=0)
    with pytest.raises(ValueError, match="out must end"):
        data.cut_sample(tree, tmp_path / "d.zip")
    with pytest.raises(SystemExit) as e:
        cli.main(["cut-sample", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "d.tar.gz")])
    assert e.value.code == 2 and not (tmp_path / "d.tar.gz").exists()


def test_cut_sample_never_overwrites_its_source(tmp_path, fake):
    a = tmp_path / "a.tar.gz"
    data.cut_sample(write_tree(tmp_path / "tree", fake), a, train_per_class=3, test_per_class=2)
    blob = a.read_bytes()
    (tmp_path / "link.tar.gz").symlink_to(a)
    os.link(a, tmp_path / "hard.tar.gz")
    for out in (a, tmp_path / "link.tar.gz", tmp_path / "hard.tar.gz"):
        with pytest.raises(ValueError, match="is the source: write the sample to another file"):
            data.cut_sample(a, out, train_per_class=2, test_per_class=1)
    with pytest.raises(SystemExit) as e:
        cli.main(["cut-sample", "--source", str(a), "--out", str(a), "--train-per-class", "2"])
    assert (
        e.value.code == 2
        and a.read_bytes() == blob
        and sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "hard.tar.gz", "link.tar.gz", "tree"]
    )


def test_known_archives_are_what_they_decode_to(tmp_path, monkeypatch):
    """nrf/sample/identities.json names the identities of the sample and of full CIFAR-10's JPEG
    archive, so that records are checked against them without decoding: each entry is checked
    here against the archive decoded, where this machine has it."""
    known = data._known_archives()
    found = {data._file_sha256(p, data._signature(p)): p for p in (data.SAMPLE, data.full_cifar10_path()) if p}
    assert data._file_sha256(data.SAMPLE, data._signature(data.SAMPLE)) in known
    for sha, archive in found.items():
        for split in ("train", "test") if sha in known else ():
            decoded = data.load_cifar10(archive, split).identity
            assert decoded.split("-")[-1] == known[sha][split]
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded a known archive"))
    assert (
        data.cifar10_identity("sample", "test", cache_dir=tmp_path / "empty")
        == "cifar10-sample-test-" + known[data._file_sha256(data.SAMPLE, data._signature(data.SAMPLE))]["test"]
    )
    assert not (tmp_path / "empty").exists()  # nothing decoded, nothing cached
