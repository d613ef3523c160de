"""`netscope multitask ...`: train and compare the model families."""

from __future__ import annotations

from pathlib import Path

from netscope.cli.common import floats, ints, progress_printer
from netscope.errors import NetscopeError


def add(sub) -> None:
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
    hp.add_argument("--per-task-hidden", type=ints)
    hp.add_argument("--pooled-epochs", type=int)
    hp.add_argument("--gated-epochs", type=int)
    hp.add_argument("--stage-epochs", type=ints, help="three values, e.g. 10,10,10")
    hp.add_argument("--stage-lr", type=floats, help="three values, e.g. 1e-3,1e-4,1e-5")
    hp.add_argument("--shared-reduce", choices=["sum", "mean"])
    hp.add_argument("--ridge-folds", type=int)
    hp.add_argument("--weight-decay", type=float, help="L2 on the networks' weights")
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

    progress = progress_printer(args.quiet)
    data = _load(args, progress)
    if args.protocol == "lecture":
        protocol = protocols.lecture(data, seed=args.seed or 0, test_fraction=args.test_fraction)
    else:
        protocol = protocols.standard(data, args.data_dir, n_splits=args.splits,
                                      seed=args.seed or 0,
                                      test_fraction=args.test_fraction or 0.25, progress=progress)
    names = ("seed", "batch_size", "lr", "per_task_epochs", "per_task_hidden", "pooled_epochs",
             "gated_epochs", "stage_epochs", "stage_lr", "shared_reduce", "ridge_folds",
             "weight_decay")
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
