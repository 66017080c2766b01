"""Result records: computed once, kept in the store, committed as JSON + npz, rendered alone."""

import json
import shutil
import types

import pytest
import torch

from nrf import data, records, zoo
from nrf.options import Option

CALLS = []


def run(cfg):
    CALLS.append(cfg)
    return {
        "results": {"acc": cfg["n"] / 10, "curve": torch.tensor([0.5, float("nan")]), "by_class": {1: 2}},
        "tensors": {"delta": torch.full((2, 3, 4, 4), cfg["n"], dtype=torch.float32)},
        "data": {"identity": "toy", "n_train": 3},
    }


TOY = types.SimpleNamespace(
    __name__="toy",
    run=run,
    verdicts=lambda rec: [],
    OPTIONS=[Option("n", {"smoke": 1, "medium": 2, "paper": 2}, "a number", kind="int", low=0)],
)


@pytest.fixture()
def toy(monkeypatch, tmp_path):
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("NRF_RECORDS", raising=False)
    CALLS.clear()
    return tmp_path


def test_computed_once_then_from_the_store(toy):
    rec = records.get(TOY, {"n": 3})
    assert rec["results"] == {"acc": 0.3, "curve": [0.5, None], "by_class": {"1": 2}}  # plain JSON
    assert torch.equal(rec["tensors"]["delta"], torch.full((2, 3, 4, 4), 3.0))
    p = rec["provenance"]
    assert p["section"] == "toy" and p["profile"] == "smoke" and p["data"]["identity"] == "toy"
    assert p["threads"] >= 1 and p["hardware"] and p["created"] and "compute_seconds" in p
    assert rec["options"] == {"profile": "smoke", "n": 3}
    again = records.get(TOY, {"n": 3.0})  # 3 and 3.0 are one option value
    assert len(CALLS) == 1 and again["results"] == rec["results"] and again["source"].startswith("store")


def test_committed_record_renders_without_computing(toy, monkeypatch):
    path = records.publish(TOY, {"profile": "paper"})
    assert path == toy / "results" / "paper" / "toy.json" and path.with_suffix(".npz").exists()
    assert json.loads(path.read_text())["results"]["acc"] == 0.2  # diffable numbers
    CALLS.clear()
    monkeypatch.setenv("NRF_STORE", str(toy / "empty-store"))
    monkeypatch.setenv("NRF_RECORDS", "committed")
    rec = records.get(TOY, {"profile": "paper"})
    assert not CALLS and rec["source"].startswith("committed") and rec["tensors"]["delta"].shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="no record of section toy"):
        records.get(TOY, {"profile": "paper", "n": 5})  # other options: not committed, never computed
    monkeypatch.setenv("NRF_RECORDS", "fresh")
    assert records.get(TOY, {"profile": "paper"})["source"].startswith("store") and len(CALLS) == 1
    monkeypatch.setenv("NRF_RECORDS", "sometimes")
    with pytest.raises(ValueError, match="NRF_RECORDS must be one of"):
        records.get(TOY, {})


def test_tampered_tensors_are_detected(toy):
    path = records.publish(TOY, {})
    blob = path.with_suffix(".npz").read_bytes()
    path.with_suffix(".npz").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ValueError, match="checksum"):
        records.load(path)


def test_records_are_small(toy, monkeypatch):
    big = types.SimpleNamespace(
        __name__="big",
        OPTIONS=TOY.OPTIONS,
        verdicts=TOY.verdicts,
        run=lambda cfg: {"results": {}, "tensors": {"w": torch.zeros(3_000_000)}},
    )
    with pytest.raises(ValueError, match="MiB of tensors"):
        records.get(big, {})


def test_bad_options_fail_before_computing(toy):
    with pytest.raises(ValueError, match="unknown option 'm'"):
        records.get(TOY, {"m": 1})
    with pytest.raises(ValueError, match="option n must be an integer >= 0"):
        records.get(TOY, {"n": -1})
    assert not CALLS


def test_unknown_section():
    from nrf import contents

    with pytest.raises(ValueError, match="section must be one of"):
        contents.section("no_such_page")
    assert contents.section("spatial") is contents.SECTIONS["spatial"]


def test_a_section_is_its_module_not_its_name(toy):
    """records take the section's module, which the page imports (explicit), not a name looked up."""
    with pytest.raises(ValueError, match=r"section must be a module of nrf.sections .*got 'toy'"):
        records.get("toy", {})
    assert records.name_of(TOY) == "toy" and not CALLS


def test_a_recomputation_says_whether_it_agrees_with_the_committed_record(toy, monkeypatch):
    from nrf import claims, page

    def verdicts(rec):
        acc = rec["results"]["acc"]
        return [
            claims.Verdict(
                claim="toy accuracy",
                test="T",
                effect=100 * acc,
                spread=1.0,
                unit="points",
                status="holds",
                criterion="-",
            )
        ]

    monkeypatch.setattr(TOY, "verdicts", verdicts)
    first = records.load(records.publish(TOY, {}))
    assert "recomputation" not in first["provenance"] and page.recomputation(first["provenance"]) == ""
    monkeypatch.setenv("NRF_STORE", str(toy / "another-machine"))  # recomputed elsewhere: the same numbers
    p = records.load(records.publish(TOY, {}))["provenance"]
    assert p["recomputation"]["claims"] == [
        {"claim": "toy accuracy", "before": "+10 ± 1 points", "after": "+10 ± 1 points", "differs": False}
    ]
    assert "agrees" in page.recomputation(p) and page._agreement_word(p) == "agrees"
    monkeypatch.setenv("NRF_STORE", str(toy / "a-third-machine"))
    monkeypatch.setattr(TOY, "run", lambda cfg: {**run(cfg), "results": {"acc": 0.2}})  # moved 10 s.e.
    p = records.load(records.publish(TOY, {}))["provenance"]
    assert p["recomputation"]["claims"][0]["differs"]
    assert "**Recomputed, and it differs" in page.recomputation(
        p
    ) and "was +10 ± 1 points, now +20" in page.recomputation(p)


def test_a_committed_record_is_checked(toy):
    path = records.publish(TOY, {})
    text = path.read_text()
    assert records.get(TOY, {})["source"].startswith("committed")

    def damaged(edit, message):
        path.write_text(edit(json.loads(text)) if callable(edit) else edit)
        for read in (lambda: records.get(TOY, {}), lambda: records.load(path)):
            with pytest.raises(records.RecordError, match=message) as e:
                read()
            assert str(e.value).startswith(f"the record {path} ") and "\n" not in str(e.value)
        path.write_text(text)

    def number(body):  # one number changed, as a hand edit would
        body["results"]["acc"] = 0.9
        return json.dumps(body)

    def without(key, rehash=False):
        def edit(body):
            del body[key]
            if rehash:
                body["checksum"] = records.checksum(body)
            return json.dumps(body)

        return edit

    damaged(number, "does not match its checksum")
    damaged(without("checksum"), "has no 'checksum'")
    damaged(without("options", rehash=True), "has no 'options'")
    damaged(without("tensors_sha256"), "does not match its checksum")
    damaged(without("tensors_sha256", rehash=True), "has no 'tensors_sha256' for the toy.npz beside it")
    damaged(text[:-20], r"cannot be read \(Unterminated string")
    damaged("[]", "has no 'checksum'")
    npz = path.with_suffix(".npz")
    blob = npz.read_bytes()
    npz.unlink()
    with pytest.raises(records.RecordError, match=r"has tensors, but .*toy.npz cannot be read \(No such file"):
        records.get(TOY, {})
    npz.write_bytes(blob)
    assert records.get(TOY, {})["results"]["acc"] == 0.1


def test_a_record_that_fails_its_check_is_recomputed_and_replaced(toy, capsys):
    path = records.publish(TOY, {})
    assert records.current(TOY, {})
    blob = path.with_suffix(".npz").read_bytes()
    path.with_suffix(".npz").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert not records.current(TOY, {})  # nrf reproduce recomputes it, not "committed"
    assert "toy.json does not match its tensors" in capsys.readouterr().out
    records.publish(TOY, {})  # replaced, with nothing to compare against
    assert "recomputation" not in records.load(path)["provenance"] and records.current(TOY, {})


def tree(root, seed):
    """A tiny CIFAR-10 ImageFolder tree: one random 32x32 PNG per class and split."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for split in ("train", "test"):
        for c in data.CIFAR10_CLASSES:
            (root / split / c).mkdir(parents=True)
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(pixels).save(root / split / c / "0.png")
    return root


def run_on_data(cfg):
    CALLS.append(cfg)
    train, test = zoo.load_data(cfg["data"])
    return {"results": {"first_pixel": int(train.x[0, 0, 0, 0])}, "data": records.data_note(train, test)}


DATA_TOY = types.SimpleNamespace(
    __name__="toy", OPTIONS=[Option("data", "sample", "the data", kind="str")], run=run_on_data, verdicts=lambda rec: []
)


def test_records_are_keyed_by_the_data_they_read(toy, monkeypatch, tmp_path):
    """Not by the `data` option's text: NRF_CIFAR10 pointing at other data, or a folder whose
    images were replaced, computes anew instead of returning the old record."""
    monkeypatch.setenv("NRF_CACHE", str(tmp_path / "cache"))
    a, b = tree(tmp_path / "a", seed=1), tree(tmp_path / "b", seed=2)
    monkeypatch.setenv("NRF_CIFAR10", str(a))
    records.publish(DATA_TOY, {"data": "cifar10"})
    first = records.get(DATA_TOY, {"data": "cifar10"})
    assert first["source"].startswith("committed") and len(CALLS) == 1
    monkeypatch.setenv("NRF_CIFAR10", str(b))
    assert not records.published(DATA_TOY, {"data": "cifar10"}) and not records.current(DATA_TOY, {"data": "cifar10"})
    other = records.get(DATA_TOY, {"data": "cifar10"})
    assert other["source"].startswith("store") and len(CALLS) == 2
    assert other["provenance"]["data"]["identity"] != first["provenance"]["data"]["identity"]
    assert records.get(DATA_TOY, {"data": "cifar10"})["results"] == other["results"] and len(CALLS) == 2
    monkeypatch.setenv("NRF_CIFAR10", str(tmp_path / "absent"))  # no data here: the committed record is all there is
    assert records.get(DATA_TOY, {"data": "cifar10"})["source"].startswith("committed")

    monkeypatch.setenv("NRF_RECORDS", "fresh")
    folder = tmp_path / "data"
    shutil.copytree(a, folder)
    assert records.get(DATA_TOY, {"data": str(folder)})["results"] == first["results"] and len(CALLS) == 3
    shutil.rmtree(folder)
    shutil.copytree(b, folder)  # the same path, other images
    assert records.get(DATA_TOY, {"data": str(folder)})["results"] == other["results"] and len(CALLS) == 4


def test_medium_and_paper_records_come_from_committed_code(toy, monkeypatch):
    """results/medium and results/paper name the commit that computed them: a dirty checkout (or
    an artifact computed from one) may not write there; smoke and records written elsewhere may."""
    from nrf import store

    monkeypatch.delenv("NRF_RESULTS")
    monkeypatch.setattr(store, "REPO", toy)
    monkeypatch.setattr(store, "git_commit", lambda: "0123456789-dirty")
    with pytest.raises(ValueError, match=r"medium records in results/medium/ must come from committed code.*-dirty"):
        records.publish(TOY, {"profile": "medium"})
    assert not CALLS and not (toy / "results" / "medium").exists()  # refused before computing
    assert records.publish(TOY, {"profile": "smoke"}).exists()
    monkeypatch.setattr(store, "git_commit", lambda: "0123456789")  # a clean checkout, a dirty artifact
    monkeypatch.setattr(records, "get", lambda *a, **k: {"provenance": {"commits": ["0123456789", "abc-dirty"]}})
    with pytest.raises(ValueError, match=r"would name abc-dirty"):
        records.publish(TOY, {"profile": "paper"})
    monkeypatch.setenv("NRF_RESULTS", str(toy / "elsewhere"))
    monkeypatch.setattr(store, "git_commit", lambda: "0123456789-dirty")
    records.require_clean("paper")  # not the checkout's results/: allowed
