"""`netscope multitask ...`: train and compare the model families."""

from __future__ import annotations

from pathlib import Path

from netscope.cli.common import notice, progress_printer
from netscope.cli.options import Number, number, numbers
from netscope.errors import NetscopeError
from netscope.multitask.families import KINDS


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
    src.add_argument("--target-column", help="column to predict (with --csv); several, "
                     "comma-separated and without --task-column: each target is a task over "
                     "the same rows (several targets: shared-bottom, MMoE, PLE, cross-stitch "
                     "beside independent models per target)")
    src.add_argument("--features", help="comma-separated feature columns (default: all others)")
    src.add_argument("--target-kind", type=_kinds, default="auto",
                     help="auto (text, booleans and 0/1 are classes, said in the log), "
                          "regression, binary, multiclass or count (with --csv); with several "
                          "targets one kind for all or one per target, comma-separated "
                          "(default: auto)")
    src.add_argument("--missing", choices=["impute", "error"], default="impute",
                     help="missing feature values: impute (training medians plus "
                          "missing-indicator columns; trees take them as they are) or error "
                          "(default: impute)")
    src.add_argument("--data-dir", help="folder holding school/ and computer_survey/ "
                     "(default: $NETSCOPE_DATA, else a verified download into the cache)")
    run.add_argument("--protocol", choices=["lecture", "standard", "new-tasks"],
                     default="lecture",
                     help="lecture: the course's split; standard: the published splits; "
                          "new-tasks: whole tasks held out (grouped K-fold over tasks)")
    number(run, "--splits", lo=1, help="use only the first N splits (standard; default: all "
           "of the data's published splits, 10 for the school data); the number of task "
           "folds K (new-tasks, default 5)")
    number(run, "--new-task-fraction", cast=float, lo=0, hi=1, above=True, below=True,
           help="with --protocol standard: hold this share of the tasks out of training "
                "whole in each split, scored apart as new tasks")
    number(run, "--test-fraction", cast=float, lo=0, hi=1, above=True, below=True,
           help="test share for random splits (default: 0.4, the course's; 0.25 for the "
                "survey data)")
    from netscope.multitask.families import FAMILIES  # no PyTorch: the keys only

    run.add_argument("--families", help="comma-separated subset of model families (default: "
                     "every family that takes the target's kind): " + ", ".join(FAMILIES))
    from netscope.multitask.balancing.registry import BALANCINGS  # no PyTorch either

    run.add_argument("--balancing", default="sum",
                     help="comma-separated strategies by which every network with shared "
                          "parameters (shared trunk (accumulate), task-gated, shared-bottom, "
                          "MMoE, PLE, cross-stitch) combines its tasks' gradients, each its "
                          "own row (default: sum, the course's): " + ", ".join(BALANCINGS))
    run.add_argument("--out", help="output folder (default: netscope-results/DATA-PROTOCOL, "
                     "FILE-csv-PROTOCOL for --csv FILE); "
                     "replaced as a whole when the run completes")
    run.add_argument("--save-models", action="store_true",
                     help="also save each fitted model (first split) under OUT/models/, "
                          "with its preprocessing (`netscope multitask predict` reads it)")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    number(run, "--jobs", lo=1, hi=1024,
           help="splits fit side by side in this many processes, one thread each "
                "(default: --threads when there are several splits)")
    run.add_argument("--backend", choices=["processes", "dask"], default="processes",
                     help="where the grid of splits x families runs: local processes "
                          "(--jobs) or a Dask cluster (--scheduler; pip install "
                          "'netscope[dask]')")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="the Dask scheduler's address, e.g. tcp://10.0.0.5:8786 (with "
                          "--backend dask)")
    setting_flags(run)
    run.set_defaults(func=_multitask_run)
    pred = mts.add_parser("predict", help="predict new rows of a table with a model saved by "
                          "`multitask run --csv ... --save-models`")
    pred.add_argument("model", help="the saved model's folder (OUT/models/FAMILY)")
    pred.add_argument("--csv", metavar="FILE", required=True,
                      help="rows to predict: the training table's task and feature columns "
                           "(a target column, if any, is kept and ignored)")
    pred.add_argument("--out", metavar="FILE", required=True,
                      help="CSV written: the rows with the predictions (a number, or a "
                           "probability per class and the most probable class)")
    pred.set_defaults(func=_multitask_predict)


def _kinds(text: str) -> str:
    """--target-kind: one kind, or one per target (comma-separated)."""
    import argparse

    for k in text.split(","):
        if k.strip() not in ("auto", *KINDS):
            raise argparse.ArgumentTypeError(f"invalid choice: {k.strip()!r} (choose from "
                                             f"auto, {', '.join(KINDS)})")
    return text


def setting_flags(parser) -> None:
    """One flag per setting declared in the family registry, with its range or choices and
    which families read it (defaults: the course's values)."""
    from netscope.multitask.families import FAMILIES, all_settings

    groups = {}
    for s in all_settings():
        if s.group not in groups:
            groups[s.group] = parser.add_argument_group(
                s.group + (" (defaults: the course's values)" if s.group != "general" else ""))
        users = [k for k, f in FAMILIES.items() if s in f.settings]
        where = "" if len(users) > 3 else f"; {', '.join(users)}"
        text = f"{s.help} (default {_default(s.default)}{where})"
        if s.choices is not None:
            groups[s.group].add_argument(s.flag, choices=list(s.choices), help=text)
            continue
        item = Number(s.cast, s.lo, s.hi, above=s.above)
        if s.count is None:
            number(groups[s.group], s.flag, check=item, help=text)
        else:
            numbers(groups[s.group], s.flag, item=item, count=s.count or None, help=text)


def _default(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}" \
        if isinstance(value, int | float) else str(value)


def _protocol(args, data, progress):
    from netscope.multitask import protocols

    if args.new_task_fraction is not None and args.protocol != "standard":
        raise NetscopeError("--new-task-fraction goes with --protocol standard (new-tasks "
                            "holds tasks out by itself).")
    seed = args.seed or 0
    if args.protocol == "lecture":
        return protocols.lecture(data, seed=seed, test_fraction=args.test_fraction)
    if args.protocol == "new-tasks":
        return protocols.new_tasks(data, folds=args.splits or 5, seed=seed,
                                   seen_fraction=args.test_fraction or 0.25)
    protocol = protocols.standard(data, args.data_dir, n_splits=args.splits, seed=seed,
                                  test_fraction=args.test_fraction or 0.25, progress=progress)
    if args.new_task_fraction is not None:
        protocol = protocols.hold_out_tasks(data, protocol, args.new_task_fraction, seed)
    return protocol


def _jobs(args, protocol) -> int:
    """Processes for the splits: as asked, else one per thread netscope may use."""
    import torch

    if len(protocol.splits) < 2:
        return 1
    return args.jobs or torch.get_num_threads()


def _names(text: str | None, flag: str) -> list[str] | None:
    """A comma-separated option as a list; None when not given; an error when empty."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise NetscopeError(f"{flag} {text!r} has an empty name; give comma-separated names.")
    return names


def _load(args, progress):
    from netscope.data import load_school, load_survey, load_table

    if args.csv:
        if not args.task_column or not args.target_column:
            raise NetscopeError("--csv needs --task-column and --target-column (or several "
                                "comma-separated --target-column names without "
                                "--task-column: several targets on the same rows).")
        if "," in args.target_kind:
            raise NetscopeError("--target-kind takes one kind for one target column.")
        feats = _names(args.features, "--features")
        return load_table(args.csv, args.task_column, args.target_column, feats,
                          target_kind=args.target_kind, missing=args.missing)
    loader = load_school if args.dataset == "school" else load_survey
    return loader(args.data_dir, progress=progress)


def _multitask_run(args) -> int:
    import shlex
    import sys

    if args.csv and args.task_column and args.target_column and not Path(args.csv).is_file():
        raise NetscopeError(f"{args.csv}: file not found.")  # before PyTorch and SciPy
    targets = _names(args.target_column, "--target-column") or []
    if args.csv and len(targets) > 1:
        return _targets_run(args, targets)

    from netscope.files.folders import check_replaceable, staged_folder
    from netscope.multitask.comparison.results import compare
    from netscope.multitask.families import check_families
    from netscope.multitask.settings import Settings, setting_names
    from netscope.render.comparison import text_report, write_comparison

    if (args.backend == "dask") != bool(args.scheduler):
        raise NetscopeError("--backend dask and --scheduler ADDRESS go together (the Dask "
                            "scheduler's address, e.g. tcp://127.0.0.1:8786).")
    if args.target_kind != "auto" and not args.csv:
        raise NetscopeError("--target-kind goes with --csv (the built-in data sets' targets "
                            "are numbers).")
    chosen = _names(args.families, "--families")
    families = check_families(chosen) if chosen else None  # None: all that take the kind
    balancing = _balancing(args)
    # a user's file never shares a built-in data set's folder (nor its name or settings)
    name = f"{Path(args.csv).stem}-csv" if args.csv else args.dataset
    out = check_replaceable(args.out or f"netscope-results/{name}-{args.protocol}")
    progress = progress_printer(args.quiet)
    data = _load(args, progress)
    protocol = _protocol(args, data, progress)
    settings = Settings.for_dataset(data.reference,
                                    **{n: getattr(args, n) for n in setting_names()})
    comp = compare(data, protocol, settings, families, progress, jobs=_jobs(args, protocol),
                   scheduler=args.scheduler, balancing=balancing)
    with staged_folder(out, shlex.join(["netscope", *sys.argv[1:]]), notice) as stage:
        paths = write_comparison(comp, stage)
        if args.save_models:
            _save_models(comp, protocol, stage / "models")
        print(text_report(comp))  # before the swap: after it, only the last line is left
    print(f"\nwrote {len(paths)} files to {out}/ (open {out / 'report.html'})")
    return 0


def _targets_run(args, targets: list[str]) -> int:
    """Several targets on the same rows: each target a task over the rows that have it."""
    import shlex
    import sys

    if args.task_column:
        raise NetscopeError(f"several targets ({', '.join(targets)}) with --task-column are not "
                            f"supported: each target becomes a task over the same rows, so "
                            f"the rows cannot also be grouped into tasks. Drop --task-column "
                            f"(give the task column as a feature to keep what it says), or "
                            f"run one target at a time with --task-column.")
    if args.protocol == "new-tasks" or args.new_task_fraction is not None:
        raise NetscopeError("several targets are compared on random splits of the rows "
                            "(--protocol lecture: one, standard: --splits, default 5); "
                            "new tasks do not apply: every target is a task of every run.")
    if not Path(args.csv).is_file():
        raise NetscopeError(f"{args.csv}: file not found.")
    from netscope.data.targets_table import load_targets_table
    from netscope.files.folders import check_replaceable, staged_folder
    from netscope.multitask.settings import Settings, setting_names
    from netscope.multitask.several.compare import compare_targets
    from netscope.render.targets_report import text_report, write_targets

    balancing = _balancing(args)
    families = _names(args.families, "--families")
    out = check_replaceable(args.out or f"netscope-results/{Path(args.csv).stem}-csv-targets")
    progress = progress_printer(args.quiet)
    kinds = [k.strip() for k in args.target_kind.split(",")]
    data = load_targets_table(args.csv, targets, _names(args.features, "--features"),
                              kinds[0] if len(kinds) == 1 else kinds, args.missing)
    settings = Settings(**{n: getattr(args, n) for n in setting_names()
                           if getattr(args, n) is not None})
    splits = 1 if args.protocol == "lecture" else (args.splits or 5)
    import torch

    jobs = 1 if splits < 2 else (args.jobs or torch.get_num_threads())
    comp = compare_targets(data, settings, families, balancing, splits,
                           args.test_fraction or 0.25, args.seed or 0, progress, jobs)
    with staged_folder(out, shlex.join(["netscope", *sys.argv[1:]]), notice) as stage:
        paths = write_targets(comp, stage)
        if args.save_models:
            from netscope.multitask.several.pipeline import save_target_models

            save_target_models(comp, stage / "models")
        print(text_report(comp))
    print(f"\nwrote {len(paths)} files to {out}/ (open {out / 'report.html'})")
    return 0


def _balancing(args) -> tuple[str, ...]:
    """--balancing as names, each known and its solver installed (before any data loads)."""
    from netscope.multitask.balancing.registry import check_balancings, check_installed

    names = check_balancings(_names(args.balancing, "--balancing"))
    for n in names:
        check_installed(n)
    return names


def _save_models(comp, protocol, folder: Path) -> None:
    """Each first-split model, and (data from a table) how rows become its input."""
    from netscope.multitask.pipeline import Preprocessing
    from netscope.multitask.protocols import prepare

    prep = prepare(comp.data, protocol.splits[0], protocol.scale_from) \
        if comp.data.columns else None
    for res in comp.results:
        path = res.model.save(folder / res.family.key)
        if prep is not None:
            Preprocessing.of(comp.data, prep, res.family.native_missing).write(path)


def _multitask_predict(args) -> int:
    from netscope.data.tabular import read_rows
    from netscope.files.atomic import write_text
    from netscope.multitask.pipeline import predict_table
    from netscope.multitask.several.pipeline import is_targets_model, predict_targets_table

    rows = read_rows(Path(args.csv))
    predict = predict_targets_table if is_targets_model(args.model) else predict_table
    out, notes = predict(args.model, rows, args.csv)
    for line in notes:
        print(f"note: {line}")
    path = write_text(Path(args.out), out.to_csv(index=False))
    print(f"wrote predictions for {len(out)} row(s) to {path}")
    return 0
