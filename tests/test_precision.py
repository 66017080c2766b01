"""The precision a profile computes in: bf16 autocast or fp32, in the store key, repeatable."""

import json
import types

import pytest
import torch

from nrf import algorithm1, attacks, data, models, options, records, runtime, store, train
from nrf.options import Option


@pytest.fixture(scope="module")
def sample():
    return data.load_cifar10("sample", "train"), data.load_cifar10("sample", "test")


def small(d, n):
    return data.Data(d.x[:n], d.y[:n], d.classes, f"{d.identity}-first{n}")


def trained_state(sample, name):
    tr, te = small(sample[0], 128), small(sample[1], 64)
    model = models.build("resnet18", width=4, seed=0)
    with runtime.precision(name):
        history = train.train(model, tr, te, epochs=1, lr=0.05, batch_size=32, device="cpu")
    return model.state_dict(), history


def test_each_precision_repeats_to_the_bit_and_bf16_differs_from_fp32(sample):
    """The same key gives bit-identical numbers at the same thread count, in bf16 as in fp32;
    bf16 really computes in bf16 (else its results would equal fp32's)."""
    bf16, h_bf16 = trained_state(sample, "bf16")
    again, h_again = trained_state(sample, "bf16")
    fp32, _ = trained_state(sample, "fp32")
    assert all(torch.equal(bf16[k], again[k]) for k in bf16) and h_bf16["train_loss"] == h_again["train_loss"]
    assert any(not torch.equal(bf16[k], fp32[k]) for k in bf16 if k.endswith("weight"))


def test_bf16_attack_repeats_and_agrees_with_fp32(sample):
    model = models.build("resnet18", width=4, seed=0).eval()
    x, t = sample[1].x[:32], (sample[1].y[:32] + 1) % 10
    with runtime.precision("bf16"):
        a = attacks.pgd(model, x, t, norm="l2", eps=1.0)
        b = attacks.pgd(model, x, t, norm="l2", eps=1.0)
    c = attacks.pgd(model, x, t, norm="l2", eps=1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    cosine = torch.nn.functional.cosine_similarity(a.flatten(1), c.flatten(1)).mean()
    assert cosine > 0.9  # the same attack, rounded differently


def test_deepfool_is_fp32_whatever_the_precision(sample):
    model = models.build("resnet18", width=4, seed=0).eval()
    x = sample[1].x[:8]
    with runtime.precision("bf16"):
        inside = algorithm1.deepfool(model, x, max_iter=5)
    assert torch.equal(inside, algorithm1.deepfool(model, x, max_iter=5))


def test_precision_is_part_of_the_store_key():
    with runtime.precision("fp32"):
        fp32 = store.key("kind", {"a": 1})
    with runtime.precision("bf16"):
        bf16 = store.key("kind", {"a": 1})
        assert runtime.compute_id().endswith("/bf16")
    assert fp32 != bf16 and runtime.current_precision() == "fp32"  # fp32 outside any precision(...)


def test_autocast_follows_the_precision():
    with runtime.precision("bf16"), runtime.autocast(torch.device("cpu")):
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    with runtime.autocast(torch.device("cpu")):
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.float32


def test_a_profile_fixes_its_precision_and_the_environment_overrides_it(monkeypatch):
    monkeypatch.delenv("NRF_PRECISION", raising=False)
    assert [options.precision(p) for p in options.PROFILES] == ["fp32", "bf16", "bf16"]
    monkeypatch.setenv("NRF_PRECISION", "fp32")
    assert options.precision("medium") == "fp32"
    monkeypatch.setenv("NRF_PRECISION", "fp16")
    with pytest.raises(ValueError, match=r"NRF_PRECISION must be one of \['fp32', 'bf16'\], got 'fp16'"):
        options.precision("medium")
    with pytest.raises(ValueError, match="precision must be one of"):
        with runtime.precision("half"):
            pass


SEEN = []


def run(cfg):
    SEEN.append(runtime.current_precision())
    return {"results": {"n": cfg["n"]}, "data": {"identity": "toy", "n_train": 1}}


TOY = types.SimpleNamespace(
    __name__="toy",
    OPTIONS=[Option("n", 1, "a number", kind="int")],
    run=run,
    verdicts=lambda rec: [],
    commit=lambda rec, folder: SEEN.append(f"published in {runtime.current_precision()}"),
)


def test_a_record_is_computed_in_its_profiles_precision_and_says_so(monkeypatch, tmp_path):
    """A committed record of another precision is not current: `nrf reproduce` recomputes it. What
    a section publishes beside its record (models: read from the store) is in its precision too
    (the medium models stage failed on exactly that)."""
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("NRF_PRECISION", raising=False)
    monkeypatch.setattr(store, "git_commit", lambda: "abc")  # a clean checkout, as committed records need
    SEEN.clear()
    path = records.publish(TOY, {"profile": "medium"})
    assert SEEN == ["bf16", "published in bf16"] and json.loads(path.read_text())["provenance"]["precision"] == "bf16"
    assert records.current(TOY, {"profile": "medium"})
    monkeypatch.setenv("NRF_PRECISION", "fp32")
    assert not records.current(TOY, {"profile": "medium"})
    fp32 = records.get(TOY, {"profile": "medium"}, mode="fresh")
    assert SEEN[-1] == "fp32" and fp32["provenance"]["precision"] == "fp32"
