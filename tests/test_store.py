import errno
import importlib
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nrf import store


def counting(result):
    calls = []

    def compute(workdir):
        calls.append(workdir)
        return result

    return compute, calls


def test_fetch_computes_once_then_loads_and_records_provenance(tmp_path):
    compute, calls = counting({"x": torch.arange(3), "acc": 0.5})
    with store.trail() as metas:
        a = store.fetch("s", {"eps": 1.0}, compute, root=tmp_path)
        b = store.fetch("s", {"eps": 1.0}, compute, root=tmp_path)
    assert len(calls) == 1
    assert torch.equal(a["x"], b["x"]) and b["acc"] == 0.5
    assert len(metas) == 2 and metas[0] == metas[1]
    assert metas[0]["kind"] == "s" and metas[0]["seconds"] is not None and metas[0]["hardware"]
    assert metas[0]["compute"].startswith("cpu/")


def test_key_is_canonical():
    assert store.key("s", {"a": 1, "b": 2}) == store.key("s", {"b": 2, "a": 1})
    assert store.key("s", {"eps": 1}) == store.key("s", {"eps": 1.0})  # 1 and 1.0 are one number
    assert store.key("s", {"a": [1, 2]}) == store.key("s", {"a": (1.0, 2)})
    assert store.key("s", {"a": 1}) != store.key("s", {"a": 2})
    assert store.key("s", {"a": 1}) != store.key("t", {"a": 1})
    assert store.key("s", {"a": 1}, code="x") != store.key("s", {"a": 1}, code="y")


def test_thread_count_is_part_of_the_key(monkeypatch):
    monkeypatch.setenv("NRF_THREADS", "1")
    one = store.key("s", {})
    monkeypatch.setenv("NRF_THREADS", "2")
    assert store.key("s", {}) != one
    monkeypatch.setenv("NRF_THREADS", "zero")
    with pytest.raises(ValueError, match="NRF_THREADS"):
        store.key("s", {})


def test_code_hash_ignores_docstrings_and_comments():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    b = 'def f(x):\n    """Another doc, longer."""\n\n    # a comment\n    return x + 1\n'
    c = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert store.code_hash(a) == store.code_hash(b) != store.code_hash(c)
    opt = 'OPTS = [Option("n", 3, "{}", kind="int")]'
    assert store.code_hash(opt.format("a number")) == store.code_hash(opt.format("how many, reworded"))
    assert store.code_hash(opt.format("x")) != store.code_hash(opt.format("x").replace("3", "4"))


MODULE = '''
"""A kind computed by this module."""

def compute(workdir):
    """{DOC}"""
    return {{"value": {VALUE}}}
'''


def test_edited_compute_invalidates_its_kind_and_an_edited_docstring_does_not(tmp_path, monkeypatch):
    path = tmp_path / "pkg_kind.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write_and_fetch(doc, value):
        path.write_text(textwrap.dedent(MODULE.format(DOC=doc, VALUE=value)))
        store.fingerprint.cache_clear()
        store._module_hash.cache_clear()
        sys.modules.pop("pkg_kind", None)
        importlib.invalidate_caches()
        module = importlib.import_module("pkg_kind")
        calls = []

        def spy(workdir):
            calls.append(1)
            return module.compute(workdir)

        spy.__module__ = "pkg_kind"  # the code that computes is pkg_kind's
        return store.fetch("kind", {"n": 1}, spy, root=tmp_path / "store")["value"], calls

    assert write_and_fetch("first", 1) == (1, [1])
    assert write_and_fetch("an edited docstring", 1) == (1, [])  # loaded, not recomputed
    assert write_and_fetch("first", 2) == (2, [1])  # edited code: recomputed


def test_fingerprint_follows_nrf_imports():
    # a section's fingerprint covers the core it computes with, not the infrastructure
    from nrf.sections import models

    parts = store.fingerprint(models.__name__)
    assert parts == store.fingerprint("nrf.sections.models")
    assert "nrf.zoo" in store.imports_of("nrf.sections.models")
    assert "nrf.train" in store.imports_of("nrf.zoo")
    assert not store.INFRASTRUCTURE & store.dependencies("nrf.sections.models")


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_artifact_is_recomputed(tmp_path, damage):
    compute, calls = counting({"x": torch.ones(100)})
    store.fetch("s", {}, compute, root=tmp_path)
    folder = store.path("s", {}, compute, root=tmp_path)
    blob = (folder / "result.pt").read_bytes()
    if damage == "truncate":
        (folder / "result.pt").write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        (folder / "result.pt").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    else:
        (folder / "meta.json").write_text("{")
    out = store.fetch("s", {}, compute, root=tmp_path)
    assert len(calls) == 2 and torch.equal(out["x"], torch.ones(100))


def test_failed_compute_keeps_workdir_and_saves_nothing(tmp_path):
    def crash(workdir):
        (workdir / "checkpoint").write_text("epoch 3")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.fetch("s", {"n": 1}, crash, root=tmp_path)

    def resume(workdir):
        return {"resumed_from": (workdir / "checkpoint").read_text()}

    assert store.fetch("s", {"n": 1}, resume, root=tmp_path)["resumed_from"] == "epoch 3"


def test_params_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="parameters"):
        store.key("s", {"t": torch.ones(1)})


def _slow_compute(args):
    """Run in a worker process: fetch one key whose computation takes a while and is logged."""
    root, log = args
    import time

    def compute(_workdir):
        with open(log, "a") as f:
            f.write("computed\n")
        time.sleep(1.0)
        return {"value": 42}

    return store.fetch("s", {"shared": True}, compute, root=root)["value"]


def test_parallel_fetches_compute_once(tmp_path):
    import multiprocessing

    log = tmp_path / "log.txt"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        values = pool.map(_slow_compute, [(tmp_path / "store", log)] * 3)
    assert values == [42, 42, 42]
    assert log.read_text().count("computed") == 1


def test_a_held_lock_says_who_holds_it_and_can_time_out(tmp_path, monkeypatch, capsys):
    import fcntl

    compute, calls = counting({"v": 1})
    workdir = store.path("s", {"n": 2}, compute, root=tmp_path).with_suffix(".work")
    workdir.mkdir(parents=True)
    with open(workdir / "lock", "a+") as held:  # another process computing the same artifact (or stopped)
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242 on elsewhere since 2026-01-01T00:00:00+00:00")
        held.flush()
        monkeypatch.setenv("NRF_LOCK_TIMEOUT", "1.5")
        with pytest.raises(ValueError, match="gave up after 2 s waiting for s .* pid 4242 on elsewhere"):
            store.fetch("s", {"n": 2}, compute, root=tmp_path)
    assert "waiting for s" in capsys.readouterr().out and not calls
    assert store.fetch("s", {"n": 2}, compute, root=tmp_path) == {"v": 1}  # released: computed


def test_artifacts_are_readable_by_other_users(tmp_path):
    compute, _ = counting({"v": 1})
    store.fetch("s", {}, compute, root=tmp_path)
    folder = store.path("s", {}, compute, root=tmp_path)
    for p in (folder, folder / "result.pt", folder / "meta.json"):
        assert p.stat().st_mode & 0o044 == 0o044, p  # group and others may read (umask 022)


def _second_user(root, out):
    """In a forked child that has become user nobody: read a stored artifact, ask for a missing one."""
    os.setgid(65534)
    os.setuid(65534)

    def compute(workdir):
        raise AssertionError("the second user recomputed")

    compute.__module__ = "tests_store_shared"
    lines = [str(store.fetch("s", {"shared": 1}, compute, root=root)["v"])]
    try:
        store.fetch("s", {"missing": 1}, compute, root=root)
    except ValueError as e:
        lines.append(str(e))
    out.put(lines)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="acting as a second user needs root")
def test_a_second_user_reads_a_shared_store_and_is_told_it_cannot_write(capsys):
    import multiprocessing
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="nrf-shared-"))  # /tmp: reachable by the second user
    try:
        os.chmod(top, 0o755)

        def compute(workdir):
            return {"v": 7}

        compute.__module__ = "tests_store_shared"
        store.fetch("s", {"shared": 1}, compute, root=top / "store")
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_second_user, args=(top / "store", out))
        child.start()
        lines = out.get(timeout=60)
        child.join(60)
        assert lines[0] == "7"  # read, not recomputed
        assert lines[1].startswith("the store") and "is not writable" in lines[1]
        assert "discarding" not in capsys.readouterr().out
    finally:
        shutil.rmtree(top)


def test_a_full_disk_leaves_no_partial_artifact_and_is_one_line(tmp_path, monkeypatch):
    compute, calls = counting({"x": torch.ones(1000)})
    real = Path.write_bytes

    def full_disk(self, blob):  # the disk fills 100 bytes into the file
        real(self, blob[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(ValueError, match=r"no space left in .*/s: writing there needs 0.0 MiB, [\d.]+ MiB free") as e:
        store.fetch("s", {}, compute, root=tmp_path)
    assert "\n" not in str(e.value) and len(calls) == 1
    leftovers = [p.name for p in (tmp_path / "s").iterdir()]
    assert not [n for n in leftovers if n.startswith(".")], leftovers  # no partial .KEY.*/result.pt
    monkeypatch.undo()
    assert torch.equal(store.fetch("s", {}, compute, root=tmp_path)["x"], torch.ones(1000)) and len(calls) == 2


def test_a_read_only_store_says_it_is_not_writable(tmp_path, monkeypatch):
    compute, calls = counting({"v": 1})

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(
        ValueError,
        match=rf"the store {tmp_path} is not writable \(Read-only file system: .*\.work\): "
        "set NRF_STORE",
    ):
        store.fetch("s", {}, compute, root=tmp_path)
    assert not calls


def test_a_store_folder_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    compute, calls = counting({"v": 1})
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=rf"the store {tmp_path}/file is a file, not a folder: set NRF_STORE"):
        store.fetch("s", {}, compute, root=tmp_path / "file")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "s").write_text("x")  # a kind's folder
    with pytest.raises(ValueError, match=rf"needs {tmp_path}/store/s to be a folder"):
        store.fetch("s", {}, compute, root=tmp_path / "store")
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match="is a file, not a folder"):
        store.fetch("s", {}, compute)
    assert not calls and "discarding" not in capsys.readouterr().out


def test_store_settings_are_checked(tmp_path, monkeypatch):
    compute, calls = counting({"v": 1})
    monkeypatch.setenv("NRF_STORE", "")
    with pytest.raises(ValueError, match="NRF_STORE is set but empty"):
        store.fetch("s", {}, compute)
    for bad in ("abc", "-1", "nan"):
        monkeypatch.setenv("NRF_LOCK_TIMEOUT", bad)
        with pytest.raises(ValueError, match=rf"NRF_LOCK_TIMEOUT must be a number of seconds >= 0 .*, got '{bad}'"):
            store.fetch("s", {}, compute, root=tmp_path)
    assert not calls
    monkeypatch.setenv("NRF_LOCK_TIMEOUT", "inf")
    assert store.fetch("s", {}, compute, root=tmp_path) == {"v": 1}


def test_records_written_under_results_do_not_make_the_checkout_dirty(tmp_path, monkeypatch):
    """`nrf reproduce` writes results/ as each stage ends: the later stages' provenance must still
    name a clean commit, while a change to any other tracked file marks it -dirty."""
    import subprocess

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True, capture_output=True
        )

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    monkeypatch.setattr(store, "REPO", tmp_path)
    clean = store.git_commit()
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "results" / "a.json").write_text('{"n": 1}')
    assert store.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert store.git_commit() == clean + "-dirty"
