"""What the benchmarks share: the comparison libraries where installed, and one way of printing
and writing a table.

Each benchmark prints one Markdown table under a header naming what produced it (machine, CPU
model, torch, threads, command, date) and writes it to bench/results/NAME.md, which the README
quotes between its markers `<!-- bench/results/NAME.md -->` and `<!-- end -->`: a run refreshes
both, so the README shows measured tables, never typed ones. A quick run (`--quick`, the test
suite's) writes only where --out says.

torchattacks and ART live only in the bench environment (make bench); elsewhere, as in the test
suite, their rows still appear and say "not installed".
"""

import datetime
import importlib
import os
import re
import sys
from pathlib import Path

import torch

from nrf.runtime import cpu_name, pin_threads

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH.parent / "README.md"
NOT_INSTALLED = "not installed"
NOT_MEASURED = "Not measured yet: `make bench` writes this table.\n"  # the README's quote before the first run


def optional(module: str):
    """The module, or None where it is not installed (the book's environment)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


class NCHWGradients(torch.nn.Module):
    """`model` for a comparison library that reshapes input gradients with `.view`
    (torchattacks' PGDL2): nrf's models compute in channels_last, so the gradient with respect to
    an input comes back in that memory layout, which `.view` refuses; this wrapper hands it back
    contiguous (NCHW), the layout those libraries expect. Outputs are unchanged."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_ContiguousGrad.apply(x))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def command() -> str:
    """The command line that ran this benchmark, with paths relative to the checkout."""

    def short(path: str) -> str:
        rel = os.path.relpath(os.path.abspath(path), BENCH.parent)
        return path if rel.startswith("..") else rel

    return " ".join([short(sys.executable), short(sys.argv[0]), *sys.argv[1:]])


def table(columns: list[str], rows: list[list]) -> str:
    """A Markdown table; numeric columns right-aligned, floats to 3 significant digits (whole
    numbers from 100 up)."""
    numeric = [
        all(isinstance(r[i], (int, float)) or r[i] in ("", NOT_INSTALLED) for r in rows) for i in range(len(columns))
    ]

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def parse(parser, name: str, argv=None):
    """The benchmark's arguments, with --quick and --out added; args.out resolved (full runs
    write bench/results/NAME.md unless told otherwise, quick runs nowhere). Pins torch's CPU
    threads to NRF_THREADS (default 2), as the book's computations run."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, every row: checks the benchmark runs (the test suite does this); the timings mean nothing",
    )
    parser.add_argument(
        "--out", default=None, help=f"file for the table (default: bench/results/{name}.md, with --quick: none)"
    )
    args = parser.parse_args(argv)
    pin_threads()
    if args.out is None and not args.quick:
        args.out = str(RESULTS / f"{name}.md")
    return args


def publish(name: str, title: str, body: str, device: torch.device, out: str | None) -> str:
    """Print `body` (tables and notes, Markdown) under a header saying what produced it; write
    it to `out` (a path; "" or None: nowhere), and where that is bench/results/NAME.md refresh
    the README's quote of it."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    text = (
        f"### {title}\n\n- device: {where}\n- CPU: {cpu_name()}, {torch.get_num_threads()} torch threads of "
        f"{os.cpu_count()} cores\n- torch {torch.__version__}\n- command: `{command()}`\n- date: {stamp}\n\n"
        f"{body.strip()}\n"
    )
    print(text, flush=True)
    if out:
        path = Path(out)
        quoted_in_readme = path.resolve() == (RESULTS / f"{name}.md").resolve()
        readme = quote(README.read_text(), name, text) if quoted_in_readme else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if readme is not None:
            README.write_text(readme)
    return text


def quote(readme: str, name: str, text: str) -> str:
    """The README with its quote of bench/results/NAME.md replaced by `text`."""
    start, end = f"<!-- bench/results/{name}.md -->\n", "<!-- end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no quote of bench/results/{name}.md ({start.strip()} ... {end})")
    return pattern.sub(lambda _: start + text + end, readme, count=1)


def quoted(readme: str, name: str) -> str | None:
    """What the README quotes of bench/results/NAME.md (None: no such quote)."""
    found = re.search(re.escape(f"<!-- bench/results/{name}.md -->\n") + r"(.*?)<!-- end -->", readme, re.S)
    return found.group(1) if found else None
