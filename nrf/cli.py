"""The `nrf` command: one subcommand per row of COMMANDS (name, summary, add_arguments, run)."""

import argparse
import importlib
import time

import yaml


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
    from nrf.sweep import execute

    print(f"wrote {execute(args.section, _params(args.param), args.output or f'runs/{args.section}.ipynb')}")


def _sweep_args(p: argparse.ArgumentParser) -> None:
    _section_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a swept parameter (repeatable), values read as YAML: --grid lr=0.01,0.1; a value starting "
                        "with [ is one YAML list, for values that are lists or hold commas: --grid 'K=[[1, 2], [4]]'")
    p.add_argument("--grid-file", metavar="FILE.yaml",
                   help="a YAML mapping NAME -> list of values, plus optionally fixed: {NAME: VALUE} (-p wins)")
    p.add_argument("--workers", type=int, metavar="N", help="points run at once (default: one per CUDA GPU, else 1)")
    p.add_argument("--out", metavar="DIR", help="where the points' folders go (default: runs/sweep)")


def _sweep(args: argparse.Namespace) -> None:
    """Execute a section's notebook at every point of a grid; exit 1 when a point failed."""
    from nrf import sweep

    grid, fixed = sweep.grid_file(args.grid_file) if args.grid_file else ({}, {})
    for name, values in map(sweep.grid_option, args.grid):
        if name in grid:
            raise ValueError(f"--grid {name} is given twice")
        grid[name] = values
    fixed.update(_params(args.param))
    records = sweep.run(args.section, grid, fixed=fixed, workers=args.workers, out=args.out)
    print(sweep.table(records))
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        print(f"\n{len(failed)} point(s) failed:")
        for r in failed:
            print(f"  {r['log']}\n    " + r["error"].replace("\n", "\n    "))
        raise SystemExit(1)


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
    ("sweep", "execute a section's notebook at every point of a parameter grid, in parallel", _sweep_args, _sweep),
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
