"""Command line: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netscope.errors import NetscopeError


def _progress(quiet: bool):
    start = time.perf_counter()

    def report(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _add_multitask(sub) -> None:
    mt = sub.add_parser("multitask", help="multi-task learning on grouped tabular data")
    mts = mt.add_subparsers(dest="action", required=True)
    run = mts.add_parser("run", help="train and compare every model family on the same splits")
    src = run.add_argument_group("data")
    src.add_argument("--dataset", choices=["school", "survey"], default="school",
                     help="built-in reference data set (default: school)")
    src.add_argument("--csv", metavar="FILE",
                     help="your own grouped data (CSV, or Parquet with pyarrow) instead")
    src.add_argument("--task-column", help="column naming each row's task (with --csv)")
    src.add_argument("--target-column", help="column to predict (with --csv)")
    src.add_argument("--features", help="comma-separated feature columns (default: all others)")
    src.add_argument("--data-dir", help="folder holding school/ and computer_survey/ "
                     "(default: $NETSCOPE_DATA, else a verified download into the cache)")
    run.add_argument("--protocol", choices=["lecture", "standard"], default="lecture")
    run.add_argument("--splits", type=int, help="use only the first N splits (standard)")
    run.add_argument("--test-fraction", type=float, help="test share for random splits")
    run.add_argument("--families", help="comma-separated subset of model families")
    run.add_argument("--out", help="output folder (default: netscope-results/DATA-PROTOCOL)")
    run.add_argument("--save-models", action="store_true",
                     help="also save each fitted model (first split) under OUT/models/")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    hp = run.add_argument_group("hyper-parameters (defaults: the course's values)")
    hp.add_argument("--seed", type=int)
    hp.add_argument("--batch-size", type=int)
    hp.add_argument("--lr", type=float)
    hp.add_argument("--per-task-epochs", type=int)
    hp.add_argument("--per-task-hidden", type=_ints)
    hp.add_argument("--pooled-epochs", type=int)
    hp.add_argument("--gated-epochs", type=int)
    hp.add_argument("--stage-epochs", type=_ints, help="three values, e.g. 10,10,10")
    hp.add_argument("--stage-lr", type=_floats, help="three values, e.g. 1e-3,1e-4,1e-5")
    hp.add_argument("--shared-reduce", choices=["sum", "mean"])
    hp.add_argument("--ridge-folds", type=int)
    run.set_defaults(func=_multitask_run)


def _load(args, progress):
    from netscope.data import load_school, load_survey, load_table

    if args.csv:
        if not args.task_column or not args.target_column:
            raise NetscopeError("--csv needs --task-column and --target-column.")
        feats = args.features.split(",") if args.features else None
        return load_table(args.csv, args.task_column, args.target_column, feats)
    loader = load_school if args.dataset == "school" else load_survey
    return loader(args.data_dir, progress=progress)


def _multitask_run(args) -> int:
    from netscope.multitask import protocols
    from netscope.multitask.compare import FAMILIES, Settings, compare
    from netscope.render.comparison import text_report, write_comparison

    progress = _progress(args.quiet)
    data = _load(args, progress)
    if args.protocol == "lecture":
        protocol = protocols.lecture(data, seed=args.seed or 0, test_fraction=args.test_fraction)
    else:
        protocol = protocols.standard(data, args.data_dir, n_splits=args.splits,
                                      seed=args.seed or 0,
                                      test_fraction=args.test_fraction or 0.25, progress=progress)
    names = ("seed", "batch_size", "lr", "per_task_epochs", "per_task_hidden", "pooled_epochs",
             "gated_epochs", "stage_epochs", "stage_lr", "shared_reduce", "ridge_folds")
    settings = Settings.for_dataset(data.name, **{n: getattr(args, n) for n in names})
    families = args.families.split(",") if args.families else list(FAMILIES)
    comp = compare(data, protocol, settings, families, progress)
    out = Path(args.out or f"netscope-results/{data.name}-{protocol.name}")
    paths = write_comparison(comp, out)
    if args.save_models:
        for res in comp.results:
            res.model.save(out / "models" / res.family.key)
    print(text_report(comp))
    print(f"\nwrote {len(paths)} files to {out}/ (open {paths['report.html']})")
    return 0


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="the reference data sets")
    ds = data.add_subparsers(dest="action", required=True)
    fetch = ds.add_parser("fetch", help="download school and survey data into the cache "
                          "(SHA-256 verified)")
    fetch.add_argument("--dir", help="target folder (default: the cache)")
    fetch.set_defaults(func=_data_fetch)
    check = ds.add_parser("check", help="verify a data folder against the known checksums")
    check.add_argument("--data-dir")
    check.set_defaults(func=_data_check)


def _data_fetch(args) -> int:
    from netscope.data.sources import fetch_all

    root = fetch_all(Path(args.dir) if args.dir else None, progress=_progress(False))
    print(f"data ready in {root}")
    return 0


def _data_check(args) -> int:
    from netscope.data.sources import FILES, data_dir, sha256

    root, bad = data_dir(args.data_dir), 0
    for rel, (_, expected) in FILES.items():
        path = root / rel
        status = "missing" if not path.is_file() else (
            "ok" if sha256(path) == expected else "CHECKSUM MISMATCH")
        bad += status != "ok"
        print(f"{status:18s} {path}")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netscope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_multitask(sub)
    _add_data(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NetscopeError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"netscope: error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
