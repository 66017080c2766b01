"""The `nrf` command: one subcommand per row of COMMANDS (name, summary, add_arguments, run)."""

import argparse
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import yaml

from nrf.options import options_file
from nrf.processes import interrupt


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


def _params(args: argparse.Namespace) -> dict:
    """The options of --params FILE (a YAML mapping NAME -> value), then -p NAME VALUE pairs, which
    win; values are read as YAML (1.0 -> float, [1, 2] -> list, null -> None; the options coerce
    1e-3 and 8/255, which YAML leaves as text). A name given twice with -p is an error."""
    params = {}
    if args.params:
        params = options_file(args.params)
    given = set()
    for name, value in args.param:
        if name in given:
            raise ValueError(f"-p {name} is given twice")
        given.add(name)
        try:
            params[name] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"-p {name}: {value!r} is not a YAML value ({str(e).splitlines()[0]})") from None
    return _users_data(params)


def _users_data(params: dict) -> dict:
    """`params` with its `data` path, if any, made absolute: relative to where the user typed the
    command (a notebook runs in book/), whether it came from -p, --params, --grid or --grid-file."""
    if isinstance(params.get("data"), str) and params["data"] not in ("sample", "cifar10"):
        return {**params, "data": os.path.abspath(params["data"])}
    return params


def _params_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="profile or an option (repeatable): -p profile paper -p norm linf; "
        "`nrf options SECTION` lists a section's options",
    )
    p.add_argument(
        "--params",
        metavar="FILE.yaml",
        help="options from a YAML mapping NAME -> value (-p wins), "
        "e.g. grids/paper-full.yaml: the paper's full constructed-data grid",
    )


def _section_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("section", help="a section of the book: the name of book/SECTION.py, e.g. models")
    _params_arguments(p)


def _run_args(p: argparse.ArgumentParser) -> None:
    _section_args(p)
    p.add_argument(
        "--output",
        metavar="FILE.ipynb|FOLDER",
        help="the executed notebook, or a folder for FOLDER/SECTION.ipynb (default: runs/SECTION.ipynb)",
    )


def _run(args: argparse.Namespace) -> None:
    """Execute one section's notebook with papermill, with the given parameters (checked first)."""
    from nrf import notebooks
    from nrf.sweep import check, warn_paper_on_cpu

    params = _params(args)
    warn_paper_on_cpu(check(args.section, [params]))
    output = Path(args.output or "runs")
    if args.output is None or output.is_dir() or args.output.endswith(os.sep):
        output = output / f"{args.section}.ipynb"
    try:  # before the notebook runs, not after
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output {output}: cannot create its folder ({e.strerror})") from None
    print(f"wrote {notebooks.execute(args.section, params, output)}")


def _sweep_args(p: argparse.ArgumentParser) -> None:
    _section_args(p)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a swept parameter (repeatable), values read as YAML: --grid lr=0.01,0.1; a value starting "
        "with [ is one YAML list, for values that are lists or hold commas: --grid 'K=[[1, 2], [4]]'",
    )
    p.add_argument(
        "--grid-file",
        metavar="FILE.yaml",
        help="a YAML mapping NAME -> list of values, plus optionally fixed: {NAME: VALUE} (-p wins)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="points run at once (default: one per CUDA GPU, else cores / NRF_THREADS; "
        "with --executor slurm: the job array's parallelism, default all)",
    )
    p.add_argument("--out", metavar="DIR", help="where the points' folders go (default: runs/sweep)")
    p.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="run the points here (default) or as one SLURM job array through submitit",
    )
    slurm = p.add_argument_group(
        "SLURM (--executor slurm; defaults from the profile: smoke and medium on CPUs, paper on a GPU per point)"
    )
    slurm.add_argument("--partition", help="the partition (default: the cluster's)")
    slurm.add_argument(
        "--time",
        type=int,
        metavar="MIN",
        help="time limit per point in minutes (default: smoke 60, medium 240, paper 1440)",
    )
    slurm.add_argument("--cpus", type=int, metavar="N", help="CPUs per point (default: NRF_THREADS)")
    slurm.add_argument("--gpus", type=int, metavar="N", help="GPUs per point (default: smoke and medium 0, paper 1)")
    slurm.add_argument(
        "--mem", type=float, metavar="GB", help="memory per point (default: smoke 8, medium 16, paper 32)"
    )
    slurm.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra sbatch option (repeatable): --sbatch account=myproject --sbatch qos=high",
    )


def _sweep(args: argparse.Namespace) -> None:
    """Execute a section's notebook at every point of a grid; exit 1 when a point did not finish."""
    from nrf import slurm, sweep

    grid, fixed = sweep.grid_file(args.grid_file) if args.grid_file else ({}, {})
    for name, values in map(sweep.grid_option, args.grid):
        if name in grid:
            raise ValueError(f"--grid {name} is given twice")
        grid[name] = values
    fixed = _users_data({**fixed, **_params(args)})
    if isinstance(grid.get("data"), list):
        grid["data"] = [_users_data({"data": value})["data"] for value in grid["data"]]
    given = {
        "partition": args.partition,
        "time_min": args.time,
        "cpus": args.cpus,
        "gpus": args.gpus,
        "mem_gb": args.mem,
        "sbatch": dict(map(slurm.sbatch_option, args.sbatch)) or None,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if options and args.executor != "slurm":
        raise ValueError("--partition, --time, --cpus, --gpus, --mem and --sbatch need --executor slurm")
    outcomes = sweep.run(
        args.section,
        grid,
        fixed=fixed,
        workers=args.workers,
        out=args.out,
        executor=args.executor,
        slurm=options if args.executor == "slurm" else None,
    )
    print(sweep.table(outcomes))
    failed = [o for o in outcomes if o["status"] not in sweep.OK]
    if failed:
        print(f"\n{len(failed)} point(s) failed, cancelled or timed out:")
        for o in failed:
            print(f"  {o['status']}: {o['log']}\n    " + o["error"].replace("\n", "\n    "))
        raise SystemExit(1)


def _compute_args(p: argparse.ArgumentParser) -> None:
    _section_args(p)
    p.add_argument(
        "--save",
        action="store_true",
        help="also write the record to results/PROFILE/SECTION.json (+ .npz), to be committed",
    )


def _compute(args: argparse.Namespace) -> None:
    """Compute one section's record without Jupyter, filling the store; print its verdicts."""
    from nrf import contents, records, sweep

    start = time.perf_counter()
    section = contents.section(args.section)
    params = {"profile": records.default_profile(section), **_params(args)}  # a page's default, too
    records.resolve(section, params)  # a bad option is an error before any warning
    sweep.warn_paper_on_cpu([params["profile"]])
    if args.save:
        path = records.publish(section, params)
        record = records.load(path)
    else:
        record = records.get(section, params)
    if os.environ.get("NRF_GPU_PEAK_FILE"):  # nrf reproduce asks for the stage's peak GPU memory
        _write_gpu_peak(Path(os.environ["NRF_GPU_PEAK_FILE"]))
    print(
        f"nrf compute {args.section}: {record['provenance']['compute_seconds']:.0f} s of compute, done in "
        f"{time.perf_counter() - start:.1f} s" + (f"; wrote {path}" if args.save else "")
    )
    for v in section.verdicts(record):
        print(f"  {v.test:<14} {v.status:<17} {v.effect_text():<22} {v.claim}")


def _write_gpu_peak(path: Path) -> None:
    """This process's peak GPU memory in MiB, as JSON at `path` (nothing on a CPU)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
        path.write_text(json.dumps({"peak_gpu_mib": round(peak / 2**20)}))


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("profile", help="smoke, medium or paper")
    _params_arguments(p)  # an option goes to every section that has it
    p.add_argument(
        "--recompute",
        action="store_true",
        help="compute current stages too; each record then "
        "says whether its effects agree with the committed one's within their spread",
    )
    p.add_argument(
        "--stages",
        nargs="+",
        metavar="STAGE",
        help="only these stages (default: all, in the book's "
        "order); e.g. to spread a profile over several machines or GPU windows",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help="stop after this long (a GPU window): the "
        "running stage is stopped and resumes from its checkpoint when the command is repeated here",
    )


def _reproduce(args: argparse.Namespace) -> None:
    """Every record of a profile, in order, written to results/PROFILE/; resumable."""
    from nrf import contents, reproduce, sweep

    sweep.warn_paper_on_cpu([args.profile])
    rows = reproduce.run(
        args.profile,
        sections=args.stages or tuple(contents.PAGES),
        params=_params(args),
        recompute=args.recompute,
        budget=args.budget,
    )
    print(reproduce.table(rows))
    if any(r["status"].startswith("failed") for r in rows):
        raise SystemExit(1)


def _options_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("section", help="a section of the book, e.g. gallery")


def _options(args: argparse.Namespace) -> None:
    """Print every option of a section: what it accepts, its default per profile, its meaning."""
    from nrf import contents, options

    rows = options.table(contents.section(args.section).OPTIONS)
    width = max(len(r["option"]) for r in rows)
    print(
        f"{'profile':<{width}}  one of {list(options.PROFILES)} (default: $NRF_PROFILE, else medium where the "
        f"section's medium record is committed, else smoke; the page shows the same)"
    )
    for r in rows:
        print(
            f"{r['option']:<{width}}  {r['meaning']}\n{'':<{width}}    allowed: {r['allowed']}; default: {r['default']}"
        )


PATH_VARIABLES = ("NRF_STORE", "NRF_CACHE", "NRF_RESULTS", "NRF_CIFAR10")

COMMANDS = [
    ("run", "execute a section's notebook with papermill and other parameters", _run_args, _run),
    ("sweep", "execute a section's notebook at every point of a parameter grid, in parallel", _sweep_args, _sweep),
    ("compute", "compute a section's record without Jupyter, filling the artifact store", _compute_args, _compute),
    (
        "reproduce",
        "compute every record of a profile in order, written to results/PROFILE (resumable)",
        _reproduce_args,
        _reproduce,
    ),
    ("options", "list a section's options, their allowed values and defaults", _options_args, _options),
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
    for name in PATH_VARIABLES:  # relative to where the user typed the command, in every child too
        if os.environ.get(name):
            os.environ[name] = os.path.abspath(os.environ[name])
    before = signal.signal(signal.SIGTERM, interrupt), warnings.showwarning
    warnings.showwarning = lambda message, *_, **__: print(f"nrf {args.command}: warning: {message}", file=sys.stderr)
    try:
        _check_threads()
        args.run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: a message, not a traceback
        parser.exit(2, f"nrf {args.command}: error: {e}\n")
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM, cleaned up: children stopped, jobs cancelled
        signum = e.args[0] if e.args else signal.SIGINT
        parser.exit(128 + signum, f"nrf {args.command}: stopped ({signal.Signals(signum).name})\n")
    except BrokenPipeError:  # `nrf options SECTION | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        parser.exit(128 + signal.SIGPIPE)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        warnings.showwarning = before[1]


def _check_threads() -> None:
    """NRF_THREADS checked, and a warning when it asks for more threads than the cores this process
    may run on: torch then runs many times slower."""
    from nrf.runtime import threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads() > cores and "NRF_THREADS" in os.environ:
        warnings.warn(
            f"NRF_THREADS={threads()} is more threads than the {cores} cores this process may use: "
            "torch runs many times slower",
            stacklevel=2,
        )


if __name__ == "__main__":
    main()
