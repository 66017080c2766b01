"""Shared fixtures: a throw-away artifact store per test session, and tiny section settings."""

import errno
import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each
    os.environ["NRF_THREADS"] = "1"
    torch.set_num_threads(1)

# Settings small enough that a section's `run` finishes in seconds on 2 CPU cores: they test
# that the code runs and its outputs are well formed, not the paper's effect sizes.
TINY = {"width": 4, "epochs": 1, "robust_epochs": 1, "milestones": [], "adv_steps": 1, "eval_steps": 2}


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """Decoded data sets are cached in a temporary folder, never in the user's ~/.cache/nrf."""
    os.environ.setdefault("NRF_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def session_store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture()
def tiny(session_store, monkeypatch):
    """Options for `records.get(SECTION, ...)` on the smoke profile, with results kept in a
    session-wide temporary store so the tiny models are trained once for all section tests."""
    monkeypatch.setenv("NRF_STORE", str(session_store))
    return dict(TINY)


@pytest.fixture()
def forbid(monkeypatch):
    """forbid(owner, name, why): for the rest of the test, calling owner.name fails it with `why`
    (a section that must load from the store, or reject its parameters before training)."""

    def patch(owner, name, why):
        def boom(*args, **kwargs):
            raise AssertionError(why)

        monkeypatch.setattr(owner, name, boom)

    return patch


@pytest.fixture()
def bare(tmp_path, monkeypatch):
    """An environment with records and nothing else."""
    monkeypatch.setenv("NRF_RECORDS", "committed")
    monkeypatch.setenv("NRF_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NRF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NRF_CIFAR10", str(tmp_path / "no-cifar10"))
    monkeypatch.delenv("NRF_RESULTS", raising=False)
    monkeypatch.delenv("NRF_PROFILE", raising=False)
    return tmp_path


@pytest.fixture()
def full_disk(monkeypatch):
    """For the rest of the test every file opened through os.fdopen (runtime.write_atomic's
    temporary files) finds its disk full 1000 bytes in."""
    real_fdopen = os.fdopen

    def opened(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        write = f.write

        def write_some(blob):
            write(blob[:1000])
            raise OSError(errno.ENOSPC, "No space left on device")

        f.write = write_some
        return f

    monkeypatch.setattr(os, "fdopen", opened)
