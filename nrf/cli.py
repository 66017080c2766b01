"""The `nrf` command: one subcommand per row of COMMANDS (name, summary, add_arguments, run)."""

import argparse
import importlib
import time
from pathlib import Path

import yaml

BOOK = Path(__file__).resolve().parent.parent / "book"


def _cut_sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="ImageFolder tree or .tar.gz/.tgz/.tar/.zip of one")
    p.add_argument("--out", required=True, help="the .tar.gz to write")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)


def _cut_sample(args: argparse.Namespace) -> None:
    from nrf.data import cut_sample

    out = cut_sample(args.source, args.out, args.train_per_class, args.test_per_class, args.seed)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def _params(pairs: list[list[str]]) -> dict:
    """-p NAME VALUE pairs; values are read as YAML (1.0 -> float, [1, 2] -> list, null -> None)."""
    return {name: yaml.safe_load(value) for name, value in pairs}


def _section_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("section", help="a section of the book: the name of book/SECTION.py, e.g. models")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a section parameter (repeatable), e.g. -p profile paper -p norm linf")


def _run_args(p: argparse.ArgumentParser) -> None:
    _section_args(p)
    p.add_argument("--output", help="the executed notebook (default: runs/SECTION.ipynb)")


def _run(args: argparse.Namespace) -> None:
    """Execute one section's notebook with papermill, with the given parameters."""
    import jupytext
    import papermill

    source = BOOK / f"{args.section}.py"
    if not source.exists():
        raise ValueError(f"section must be one of {sorted(f.stem for f in BOOK.glob('*.py'))}, got {args.section!r}")
    out = Path(args.output or f"runs/{args.section}.ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook = out.with_suffix(".input.ipynb")
    jupytext.write(jupytext.read(source), notebook)
    papermill.execute_notebook(str(notebook), str(out), parameters=_params(args.param), cwd=str(BOOK))
    notebook.unlink()
    print(f"wrote {out}")


def _compute(args: argparse.Namespace) -> None:
    """Run one section's expensive work without Jupyter (e.g. on a GPU machine), filling the store."""
    try:
        section = importlib.import_module(f"nrf.sections.{args.section}")
    except ModuleNotFoundError:
        raise ValueError(f"no section {args.section!r} in nrf.sections") from None
    start = time.perf_counter()
    section.run(**_params(args.param))
    print(f"nrf compute {args.section}: done in {time.perf_counter() - start:.1f}s")


COMMANDS = [
    ("run", "execute a section's notebook with papermill and other parameters", _run_args, _run),
    ("compute", "run a section's expensive work without Jupyter, filling the artifact store", _section_args, _compute),
    (
        "cut-sample",
        "write a class-balanced random subset of an ImageFolder archive (original bytes)",
        _cut_sample_args,
        _cut_sample,
    ),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nrf", description="Universal perturbations and non-robust features.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=summary, description=summary)
        add_arguments(p)
        p.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: a message, not a traceback
        parser.exit(2, f"nrf {args.command}: error: {e}\n")


if __name__ == "__main__":
    main()
