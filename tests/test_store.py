import pytest
import torch

from nrf import store


def counting(result):
    calls = []

    def compute(workdir):
        calls.append(workdir)
        return result

    return compute, calls


def test_fetch_computes_once_then_loads(tmp_path):
    compute, calls = counting({"x": torch.arange(3), "acc": 0.5})
    a = store.fetch("s", {"eps": 1.0}, compute, root=tmp_path)
    b = store.fetch("s", {"eps": 1.0}, compute, root=tmp_path)
    assert len(calls) == 1
    assert torch.equal(a["x"], b["x"]) and b["acc"] == 0.5
    assert store.meta("s", {"eps": 1.0}, root=tmp_path)["seconds"] is not None


def test_key_depends_on_section_and_params_not_order():
    assert store.key("s", {"a": 1, "b": 2}) == store.key("s", {"b": 2, "a": 1})
    assert store.key("s", {"a": 1}) != store.key("s", {"a": 2})
    assert store.key("s", {"a": 1}) != store.key("t", {"a": 1})


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_artifact_is_recomputed(tmp_path, damage):
    compute, calls = counting({"x": torch.ones(100)})
    store.fetch("s", {}, compute, root=tmp_path)
    folder = store.path("s", {}, root=tmp_path)
    blob = (folder / "result.pt").read_bytes()
    if damage == "truncate":
        (folder / "result.pt").write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        (folder / "result.pt").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    else:
        (folder / "meta.json").write_text("{")
    assert store.load("s", {}, root=tmp_path) is None
    out = store.fetch("s", {}, compute, root=tmp_path)
    assert len(calls) == 2 and torch.equal(out["x"], torch.ones(100))


def test_failed_compute_keeps_workdir_and_saves_nothing(tmp_path):
    def crash(workdir):
        (workdir / "checkpoint").write_text("epoch 3")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.fetch("s", {"n": 1}, crash, root=tmp_path)
    assert store.load("s", {"n": 1}, root=tmp_path) is None

    def resume(workdir):
        return {"resumed_from": (workdir / "checkpoint").read_text()}

    assert store.fetch("s", {"n": 1}, resume, root=tmp_path)["resumed_from"] == "epoch 3"


def test_params_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="params"):
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
