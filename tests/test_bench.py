"""The benchmarks run (their quick modes, at tiny sizes) and print every row of their tables; the
comparison libraries, absent from this environment, still get their rows ("not installed"); the
README quotes each benchmark's latest table as the benchmark wrote it."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from nrf import models, store

BENCH = store.REPO / "bench"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402  (bench/common.py, which the benchmarks import as a sibling)

NAMES = ["bench_pgd", "bench_uap", "bench_train"]


def run_quick(name: str, out) -> list[list[str]]:
    """Run `python bench/NAME.py --quick --out OUT`; the rows of the table it wrote."""
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text in done.stdout  # printed as written
    for line in ("- device: ", "- CPU: ", "- torch ", f" bench/{name}.py --quick --out {out}`", "- date: "):
        assert line in text, line
    return tables(text)[0]


def tables(text: str) -> list[list[list[str]]]:
    """The rows of every Markdown table in `text`, without their headers and separator lines."""
    found, rows = [], None
    for line in text.splitlines() + [""]:
        if line.startswith("| "):
            rows = [] if rows is None else rows + [[cell.strip() for cell in line.strip("|").split("|")]]
        elif rows is not None and not line.startswith("|---"):
            found.append(rows)
            rows = None
    return found


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_bench_pgd_has_every_row(tiny, tmp_path):
    rows = run_quick("bench_pgd", tmp_path / "pgd.md")
    assert [(r[0], r[1]) for r in rows] == [
        ("nrf", "linf"),
        ("torchattacks", "linf"),
        ("nrf", "l2"),
        ("torchattacks", "l2"),
    ]
    assert all(float(r[5]) > 0 for r in rows if r[0] == "nrf")
    assert all((r[4] == common.NOT_INSTALLED) != installed("torchattacks") for r in rows if r[0] == "torchattacks")


def test_bench_uap_has_every_row_at_both_settings(tiny, tmp_path):
    rows = run_quick("bench_uap", tmp_path / "uap.md")
    impls = ["nrf batched", "nrf per-image", "ART UniversalPerturbation"]
    assert [(r[0], r[1]) for r in rows] == [(s, i) for s in ("smoke-5x", "medium") for i in impls]
    assert all(r[2] == "1" and 0 <= float(r[3]) <= 100 and float(r[5]) > 0 for r in rows if r[1].startswith("nrf"))
    assert all((r[2] == common.NOT_INSTALLED) != installed("art") for r in rows if r[1].startswith("ART"))


def test_bench_train_has_every_row(tiny, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_train", BENCH / "bench_train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    rows = run_quick("bench_train", tmp_path / "train.md")
    assert [(r[0], int(r[1]), int(r[2]), r[3]) for r in rows] == [
        (arch, width, batch // bench_train.QUICK_DIVISOR, "PGD-3" if adv else "natural")
        for arch, width, batch, adv in bench_train.ROWS
    ]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 and float(r[6]) > 0 for r in rows)
    attack = tables((tmp_path / "train.md").read_text())[1]
    assert [r[0] for r in attack] == ["fp32", "bf16"] and all(
        float(r[1]) > 0 and 0 <= float(r[2]) <= 100 for r in attack
    )


def test_comparison_library_gets_contiguous_input_gradients():
    """torchattacks' PGDL2 calls .view on the input gradient, which a channels_last model hands
    back in its own layout (the l2 row of bench_pgd died on it); the wrapper hands it back NCHW."""
    model = models.build("resnet18", width=4).to(memory_format=torch.channels_last).eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    (bare,) = torch.autograd.grad(model(x).sum(), x)
    with pytest.raises(RuntimeError, match="view"):
        bare.view(2, -1)
    wrapped = common.NCHWGradients(model)
    (grad,) = torch.autograd.grad(wrapped(x).sum(), x)
    assert grad.is_contiguous() and torch.equal(grad, bare)
    assert torch.equal(wrapped(x), model(x))


def test_a_full_run_refreshes_its_quote_in_the_readme(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# X\n\n<!-- bench/results/bench_pgd.md -->\nold table\n<!-- end -->\n\nafter\n")
    monkeypatch.setattr(common, "README", readme)
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    text = common.publish("bench_pgd", "T", "| a |\n|---|\n| 1 |", torch.device("cpu"), str(tmp_path / "quick.md"))
    assert "old table" in readme.read_text()  # written elsewhere: the README is left alone
    text = common.publish(
        "bench_pgd", "T", "| a |\n|---|\n| 1 |", torch.device("cpu"), str(tmp_path / "results" / "bench_pgd.md")
    )
    assert common.quoted(readme.read_text(), "bench_pgd") == text == (tmp_path / "results" / "bench_pgd.md").read_text()
    assert readme.read_text().endswith("<!-- end -->\n\nafter\n") and text in capsys.readouterr().out
    with pytest.raises(ValueError, match="no quote of bench/results/bench_uap.md"):
        common.publish("bench_uap", "T", "", torch.device("cpu"), str(tmp_path / "results" / "bench_uap.md"))


@pytest.mark.parametrize("name", [*NAMES, "uap_convergence", "constructed_schedule"])
def test_readme_quotes_the_latest_table(name):
    """Measured, not typed: the README shows bench/results/NAME.md as the benchmark wrote it (or
    says it is not measured yet)."""
    quote = common.quoted((store.REPO / "README.md").read_text(), name)
    assert quote is not None, f"README.md has no quote of bench/results/{name}.md"
    path = common.RESULTS / f"{name}.md"
    assert quote == (path.read_text() if path.exists() else common.NOT_MEASURED)


def test_constructed_schedule_has_every_row(tiny, tmp_path):
    """One row per (size, epochs) asked, each a balanced D_adv subsample trained that long."""
    rows = run_quick("constructed_schedule", tmp_path / "schedule.md")
    assert [r[0] for r in rows] == ["adv"] * 4
    sizes, epochs = [int(r[2]) for r in rows], [int(r[3]) for r in rows]
    assert epochs == [1, 2, 1, 2] and sizes[0] == sizes[1] <= 100 < sizes[2] == sizes[3] <= 200
    for r in rows:
        final_test, best = float(r[8]), float(r[9])
        assert 0 <= final_test <= best <= 100 and 0 <= float(r[7]) <= 100
