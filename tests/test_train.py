import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nrf
from nrf import models
from nrf.data import Data, load_cifar10
from nrf.train import accuracy, robust_accuracy, train

ROOT = Path(nrf.__file__).resolve().parents[1]


def subset(data: Data, n: int) -> Data:
    """n images spread evenly over the (class-grouped) data set, so every class is present."""
    idx = torch.linspace(0, len(data) - 1, n).long()
    return Data(data.x[idx], data.y[idx], data.classes, f"{data.identity}-sub{n}")


@pytest.fixture(scope="module")
def sample():
    return load_cifar10("sample", "train"), load_cifar10("sample", "test")


@pytest.fixture(scope="module")
def natural(sample):
    """A small natural model trained on 1000 sample images: the shared subject of several tests."""
    tr, te = subset(sample[0], 1000), subset(sample[1], 300)
    model = models.build("resnet18", width=8, seed=0)
    history = train(model, tr, te, epochs=3, lr=0.05, batch_size=50, milestones=(2,), augment=None, device="cpu")
    return model, history, te


def test_natural_training_beats_chance(natural):
    model, history, te = natural
    assert set(history) == {"train_loss", "train_acc", "test_acc", "lr", "seconds"}
    assert all(len(v) == 3 for v in history.values())
    assert history["lr"] == pytest.approx([0.05, 0.05, 0.005])
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert not model.training
    acc = accuracy(model, te.x, te.y, batch_size=64)
    assert acc == history["test_acc"][-1]
    assert acc > 0.2  # chance is 0.1 (seeds 0-2 give 0.26-0.33)
    assert accuracy(model, te.x.float() / 255, te.y) == acc  # uint8 and float inputs agree


def test_robust_accuracy_is_below_clean_accuracy(natural):
    model, _, te = natural
    robust = robust_accuracy(model, te.x[:100], te.y[:100], norm="l2", eps=1.0, steps=5, step_size=0.5)
    assert robust < accuracy(model, te.x[:100], te.y[:100])


def test_adversarial_training_runs_and_robust_accuracy_is_at_most_clean(sample):
    tr, te = subset(sample[0], 200), subset(sample[1], 100)
    model = models.build("resnet18", width=4)
    adv = {"norm": "linf", "eps": 8 / 255, "steps": 2, "step_size": 2 / 3 * 8 / 255}
    history = train(model, tr, te, epochs=1, lr=0.05, batch_size=50, adv=adv, device="cpu")
    assert len(history["train_loss"]) == 1 and history["train_loss"][0] > 0
    natural = models.build("resnet18", width=4)
    train(natural, tr, te, epochs=1, lr=0.05, batch_size=50, device="cpu")
    assert not torch.equal(model.head.weight, natural.head.weight)  # the attack changed what was learnt
    clean = accuracy(model, te.x, te.y)
    assert robust_accuracy(model, te.x, te.y, norm="linf", eps=8 / 255, steps=3, step_size=4 / 255) <= clean


def test_same_seed_same_weights_other_seed_other_weights(sample):
    tr, te = subset(sample[0], 200), subset(sample[1], 50)
    kw = dict(epochs=1, lr=0.05, batch_size=64, augment="resized_crop_flip", device="cpu")
    a, b, c = (models.build("vgg11", width=8) for _ in range(3))
    train(a, tr, te, seed=5, **kw)
    train(b, tr, te, seed=5, **kw)
    train(c, tr, te, seed=6, **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)


CHILD = """
import json, sys, torch
from nrf import models
from nrf.data import Data, load_cifar10
from nrf.train import train
{subset}
kw = json.loads({kw!r})
torch.set_num_threads({threads})  # the resumed run must compute alike: the parent's thread count
tr, te = subset(load_cifar10("sample", "train"), 300), subset(load_cifar10("sample", "test"), 50)
train(models.build("resnet18", width=4), tr, te, checkpoint=sys.argv[1], checkpoint_every=0, device="cpu",
      **kw)
"""
KILL_KW = {
    "epochs": 3,
    "lr": 0.05,
    "batch_size": 50,
    "milestones": [2],
    "seed": 3,
    "adv": {"norm": "l2", "eps": 0.5, "steps": 1, "step_size": 0.5},
}


def test_killed_run_resumes_to_bit_identical_weights(sample, tmp_path):
    ckpt = tmp_path / "run.pt"
    script = CHILD.format(subset=inspect.getsource(subset), kw=json.dumps(KILL_KW), threads=torch.get_num_threads())
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, "-c", script, str(ckpt)], env=env)
    try:
        while not ckpt.exists():
            assert child.poll() is None, "the training subprocess died before its first checkpoint"
            time.sleep(0.01)
        first = torch.load(ckpt, weights_only=True)
        time.sleep(first["history"]["seconds"][0] / 2)  # into the middle of the next epoch
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= killed_at < KILL_KW["epochs"]  # it really was cut off

    tr, te = subset(sample[0], 300), subset(sample[1], 50)
    resumed = models.build("resnet18", width=4, seed=99)  # the checkpoint must overwrite these weights
    h_resumed = train(resumed, tr, te, checkpoint=ckpt, device="cpu", **KILL_KW)
    straight = models.build("resnet18", width=4)
    h_straight = train(straight, tr, te, device="cpu", **KILL_KW)
    assert all(torch.equal(p, q) for p, q in zip(resumed.state_dict().values(), straight.state_dict().values()))
    assert h_resumed["train_loss"] == h_straight["train_loss"]
    assert h_resumed["test_acc"] == h_straight["test_acc"]

    with pytest.raises(ValueError, match="other arguments.*lr"):
        train(resumed, tr, te, checkpoint=ckpt, device="cpu", **{**KILL_KW, "lr": 0.1})


BAD = [
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"milestones": (2,)}, "milestones"),
    ({"milestones": (0,)}, "milestones"),
    ({"adv": {"norm": "l2", "eps": 1.0}}, "adv must be"),
    ({"augment": "mixup"}, "augment must be one of"),
    ({"adv": {"norm": "l1", "eps": 1.0, "steps": 3, "step_size": 0.5}}, r"adv\['norm'\]"),
    ({"adv": {"norm": "l2", "eps": 1.0, "steps": 0, "step_size": 0.5}}, r"adv\['steps'\]"),
]


@pytest.mark.parametrize("bad, match", BAD)
def test_bad_parameters_raise(bad, match):
    data = Data(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ["a", "b"], "tiny")
    kw = {"epochs": 2, "lr": 0.1, "batch_size": 2, **bad}
    with pytest.raises(ValueError, match=match):
        train(models.build("resnet18", width=4), data, data, device="cpu", **kw)


def test_bad_attack_parameters_raise():
    model = models.build("resnet18", width=4)
    x, y = torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="norm must be one of"):
        robust_accuracy(model, x, y, norm="l3", eps=1.0, steps=1, step_size=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(model, x, y, batch_size=0)


def test_diverged_training_stops_and_names_the_cause(sample, tmp_path):
    tr, te = subset(sample[0], 100), subset(sample[1], 20)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(ValueError, match="training diverged in epoch 1.*lower the learning rate"):
        train(models.build("resnet18", width=4), tr, te, epochs=2, lr=1e4, batch_size=50, checkpoint=ckpt, device="cpu")
    assert not ckpt.exists()  # nothing kept of a diverged run


def test_truncated_checkpoint_restarts_the_training(sample, tmp_path, capsys):
    tr, te = subset(sample[0], 100), subset(sample[1], 20)
    kw = {"epochs": 1, "lr": 0.05, "batch_size": 50, "device": "cpu", "checkpoint_every": 0}
    ckpt = tmp_path / "run.pt"
    straight = models.build("resnet18", width=4)
    train(straight, tr, te, checkpoint=ckpt, **kw)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a kill mid-write by something other than nrf
    again = models.build("resnet18", width=4)
    train(again, tr, te, checkpoint=ckpt, **kw)
    assert "unreadable" in capsys.readouterr().out
    assert all(torch.equal(p, q) for p, q in zip(again.state_dict().values(), straight.state_dict().values()))


def test_checkpoints_are_written_every_so_often_and_cudnn_is_put_back(sample, tmp_path, monkeypatch):
    tr, te = subset(sample[0], 100), subset(sample[1], 20)
    kw = {"epochs": 2, "lr": 0.05, "batch_size": 50, "device": "cpu"}
    writes = []
    monkeypatch.setattr("nrf.train.save_atomic", lambda obj, path: writes.append(obj["epoch"]))
    train(models.build("resnet18", width=4), tr, te, checkpoint=tmp_path / "a.pt", checkpoint_every=3600, **kw)
    assert writes == []  # a short run is never checkpointed
    train(models.build("resnet18", width=4), tr, te, checkpoint=tmp_path / "b.pt", checkpoint_every=0, **kw)
    assert writes == [1, 2]
    torch.backends.cudnn.benchmark = False
    train(models.build("resnet18", width=4), tr, te, **kw)
    assert torch.backends.cudnn.benchmark is False


def test_learning_rate_schedules():
    from nrf.train import learning_rate as lr

    assert [lr("step", 0.1, s, 40, [2, 3], 0.1, 10) for s in (0, 19, 20, 30)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    # onecycle over 100 steps: climbs over the first 20 to lr, then falls linearly to zero
    assert [lr("onecycle", 0.2, s, 100) for s in (0, 9, 19, 60, 99)] == pytest.approx([0.01, 0.1, 0.2, 0.1, 0.0025])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"schedule": "cosine"}, "schedule must be one of"),
        ({"schedule": "onecycle", "milestones": [1], "epochs": 2}, "milestones belong to the step schedule"),
    ],
)
def test_bad_schedule(kwargs, match):
    model = models.build("resnet18", width=2)
    d = Data(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), list(range(10)), "toy")
    with pytest.raises(ValueError, match=match):
        train(model, d, d, **{"epochs": 1, "lr": 0.1, "batch_size": 2, **kwargs})
