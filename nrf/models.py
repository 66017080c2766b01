"""The networks of the paper, all taking [0, 1] images: normalisation is their first layer.

Every model is a `Net`: `features(x)` is the penultimate vector (for the linear probes of
I-T4) and `head` the final nn.Linear, so `model(x) == model.head(model.features(x))`.
"""

import io

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from nrf.runtime import default_device, seed_all, write_atomic

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ARCHS = ("resnet18", "vgg11", "vgg16", "resnet18_imagenet")
VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as a layer, so that every epsilon is in pixel units."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        # channels_last from here on: convolutions on these small images run faster in it on CPU
        # and GPU, whatever layout the caller's batch has (about 20% on two CPU cores)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


class Net(nn.Module):
    """body: [0, 1] images -> penultimate features (starts with Normalize); head: features -> logits."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, config: dict):
        super().__init__()
        self.body, self.head, self.config = body, head, config

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            # The projection is a 1x1 convolution of stride `stride`, written as "keep every
            # stride-th pixel, then a 1x1 convolution of stride 1": the same function and the same
            # weights, but it never reaches oneDNN's strided 1x1 backward kernel, which crashes the
            # process (torch 2.15, CPU, 2+ threads, channels_last) when the input has fewer than 16
            # channels and the batch is odd (tests/test_models.py::test_narrow_odd_batch_trains).
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x[:, :, :: self.stride, :: self.stride]))


def _resnet18_cifar(width):
    """CIFAR ResNet-18: 3x3 stride-1 stem and no max-pool, so 32px images keep their resolution."""
    layers = [
        Normalize(CIFAR_MEAN, CIFAR_STD),
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    ]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), cin


def _vgg_bn(cfg, width):
    """VGG with batch norm for 32px (five max-pools leave 1x1), channels scaled by width/64."""
    layers, cin = [Normalize(CIFAR_MEAN, CIFAR_STD)], 3
    for c in cfg:
        if c == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            cout = c * width // 64
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), cin


def _resnet18_imagenet(num_classes):
    """torchvision's ResNet-18 (7x7 stem + max-pool) with its fc moved out to be the head."""
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    head, net.fc = net.fc, nn.Identity()
    return nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), net), head


def build(arch: str, num_classes: int = 10, width: int = 64, seed: int = 0) -> Net:
    """A freshly initialised model; the weights are a function of `seed` (global RNG untouched)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int; got {width!r}")
    if arch == "resnet18_imagenet" and width != 64:
        raise ValueError(f"width must be 64 for resnet18_imagenet (torchvision's fixed widths); got {width}")
    with torch.random.fork_rng(devices=[]):
        seed_all(seed)
        if arch == "resnet18":
            body, dim = _resnet18_cifar(width)
            head = nn.Linear(dim, num_classes)
        elif arch == "resnet18_imagenet":
            body, head = _resnet18_imagenet(num_classes)
        else:
            body, dim = _vgg_bn(VGG_CFG[arch], width)
            head = nn.Linear(dim, num_classes)
    return Net(body, head, {"arch": arch, "num_classes": num_classes, "width": width})


def save_atomic(obj, path) -> None:
    """torch.save, atomically (runtime.write_atomic). Serialised in memory first: torch.save
    straight into a file on a full disk fails inside torch ("inline_container.cc ... unexpected
    pos"), while write_atomic turns a full disk into one line naming the folder."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def save(path, model: Net, meta: dict) -> None:
    """Write the weights and `meta` (plain Python values) plus what `load` needs to rebuild the model."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomic({"state_dict": state, "meta": {**meta, **model.config}}, path)


def load(path, device=None) -> tuple[Net, dict]:
    """(model in eval mode on `device` (default: nrf.runtime.default_device()), meta)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta = blob["meta"]
    model = build(meta["arch"], meta["num_classes"], meta["width"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device or default_device()).eval(), meta
