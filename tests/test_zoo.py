"""The committed model zoo: a trained model exported beside its profile's records, loaded in one
call without data or training, and taken by a store that lacks it instead of training again."""

import json

import pytest
import torch

from nrf import data, records, train, zoo
from nrf.sections import models


@pytest.fixture()
def trained(tmp_path, monkeypatch):
    """A width-2 ResNet-18 trained for one epoch on 512 images of the embedded sample."""
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_RESULTS", str(tmp_path / "results"))
    full = data.load_cifar10("sample", "train")
    test = data.load_cifar10("sample", "test")
    x, y = full.x[:512], full.y[:512]
    train_data = data.Data(x, y, full.classes, data._identity("tiny", x, y))
    cfg = records.resolve(models, {"profile": "smoke", "width": 2, "epochs": 1})
    spec = zoo.recipe(cfg, "natural", train_data.identity)
    model, meta = zoo.trained(spec, train_data, test, device=torch.device("cpu"))
    return spec, train_data, test, model, meta


def test_export_then_load_without_data_or_training(trained, tmp_path):
    spec, _, test, model, meta = trained
    path = zoo.export(spec, test.identity, zoo.zoo_dir("medium") / "natural", {"role": "natural", "robust_acc": 0.1})
    assert path == tmp_path / "results" / "medium" / "models" / "natural.json"
    assert json.loads(path.read_text())["clean_acc"] == meta["clean_acc"]
    loaded, loaded_meta = zoo.load("medium", "natural", device=torch.device("cpu"))
    assert loaded_meta["robust_acc"] == 0.1 and loaded_meta["epochs"] == 1 and not loaded.training
    x = data.to_float(test.x[:16])
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match=r"no committed medium model 'robust' \(committed: \['natural'\]\)"):
        zoo.load("medium", "robust")


def test_a_store_without_the_model_takes_the_committed_one(trained, tmp_path, monkeypatch, capsys):
    spec, train_data, test, model, _ = trained
    zoo.export(spec, test.identity, zoo.zoo_dir("medium") / "natural", {"role": "natural"})
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "empty-store"))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained again"))
    again, meta = zoo.trained(spec, train_data, test, device=torch.device("cpu"))
    assert "natural taken from the committed medium models" in capsys.readouterr().out
    x = data.to_float(test.x[:16])
    assert torch.equal(again(x), model(x)) and meta["history"]["test_acc"]


def test_export_needs_a_stored_model(trained, tmp_path, monkeypatch):
    spec, _, test, _, _ = trained
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "empty-store"))
    with pytest.raises(ValueError, match="no stored model for the recipe of natural"):
        zoo.export(spec, test.identity, tmp_path / "natural", {})
