"""Devices, seeds and provenance: the few facts every run needs about where it runs."""

import os
import platform

import torch


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU (overridable with NRF_DEVICE)."""
    if "NRF_DEVICE" in os.environ:
        return torch.device(os.environ["NRF_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed`: every random draw in nrf goes through one."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def seed_all(seed: int) -> None:
    """Seed torch's global generators too (weight initialisation draws from them)."""
    torch.manual_seed(int(seed))


def autocast(device: torch.device):
    """bf16 autocast on the GPU; full fp32 on the CPU so CPU runs are exact and deterministic."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def hardware(device: torch.device | None = None) -> str:
    """One line naming the hardware and software that produced a result, for provenance."""
    device = device or default_device()
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{what}, torch {torch.__version__}"
