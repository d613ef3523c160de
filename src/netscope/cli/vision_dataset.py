"""`netscope vision explain FOLDER` (a whole folder tree, resumable, torchrun-ready) and
`netscope vision merge DIR` (join the shards of ranks that ran apart)."""

from __future__ import annotations

import os
import sys

from netscope.cli.common import progress_printer
from netscope.cli.method_options import add_method_options, given_settings, refuse_foreign
from netscope.cli.options import dataset_options, number
from netscope.errors import NetscopeError
from netscope.vision.methods.registry import METHODS, describe, names
from netscope.vision.metrics.choices import BULK_DEFAULTS


def add_dataset(vs, common) -> None:
    p = vs.add_parser("explain", help="explain every image of a folder tree: a table (Parquet "
                      "or CSV) and maps in .npz shards; resumable; runs under torchrun")
    common(p, images=False)
    p.add_argument("folder", help="folder tree of images (searched at any depth)")
    p.add_argument("--method", choices=names("dataset"), default="gradcam",
                   help=describe(names("dataset")))
    p.add_argument("--metrics", default="", help="comma-separated: deletion, insertion "
                   "(AUC per image; each costs 2 x steps forward passes)")
    number(p, "--steps", lo=2, hi=1000, default=20, help="deletion/insertion steps")
    dataset_options(p)
    p.add_argument("--labels", choices=["top1", "folder"], default="top1",
                   help="explain each image's top-1 class (default), or the class its first "
                   "folder names (FOLDER/CLASS/image, as torchvision's ImageFolder), with "
                   "accuracy")
    p.add_argument("--quiet", action="store_true")
    add_method_options(p, names("dataset"), shared=("batch_size",), overrides=BULK_DEFAULTS)
    p.set_defaults(func=_vision_explain, out="netscope-results/vision-explain")

    p = vs.add_parser("merge", help="join the shards of an explain run into one table")
    p.add_argument("out", help="the explain run's output folder")
    p.add_argument("--table", choices=["auto", "parquet", "csv"], default="auto")
    p.set_defaults(func=_vision_merge)


def _vision_explain(args) -> int:
    from pathlib import Path

    if not Path(args.folder).is_dir():  # before PyTorch loads
        raise NetscopeError(f"{args.folder}: not a folder; give the folder that holds the "
                            f"images.")
    from netscope.cli.vision_inputs import start
    from netscope.vision.datasets.explain_run import (
        DatasetSettings,
        distributed_rank,
        explain_folder,
    )
    from netscope.vision.datasets.image_files import default_workers

    rank, world = distributed_rank()
    if world > 1 and args.device in ("cuda", None) and _cuda():
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', rank)}"  # one GPU per rank
    metrics = tuple(m for m in args.metrics.split(",") if m)
    refuse_foreign(args, given_settings(args), [METHODS[args.method]])
    settings = DatasetSettings(args.method, given_settings(args, shared=False), metrics,
                               args.steps, args.batch_size,
                               default_workers() if args.workers is None else args.workers,
                               args.shard_size, args.table, args.labels)
    settings.check()
    lm, _ = start(args, images=False)
    say = progress_printer(args.quiet or rank > 0)
    try:
        summary = explain_folder(lm, args.folder, args.out, settings, say, rank, world)
    except KeyboardInterrupt:
        print(f"netscope: finished shards are kept in {args.out}; run the same command again "
              f"to continue.", file=sys.stderr)
        raise
    where = f"rank {rank}: " if world > 1 else ""
    print(f"{where}{summary.explained} explained, {summary.unreadable} unreadable, "
          f"{summary.already} already done, {summary.images_per_second:.1f} images/s")
    if args.labels == "folder" and summary.explained:
        print(f"{where}top-1 accuracy against the folder labels: "
              f"{summary.correct / summary.explained:.1%} of the {summary.explained} images "
              f"explained in this run")
    if summary.table is not None:
        print(f"table: {summary.table}")
        print(f"page: {_write_page(lm, args.folder, args.out)}")
    if summary.unreadable:
        print(f"netscope: warning: {summary.unreadable} file(s) could not be read; their "
              f"errors are in the table (status 'unreadable').", file=sys.stderr)
    return 0


def _write_page(lm, folder: str, out: str):
    """index.html beside the table: a gallery of maps over the images the model saw."""
    from pathlib import Path

    from netscope.files.atomic import write_text
    from netscope.render.explain_page import explain_page
    from netscope.vision.datasets.gallery import gallery

    table, pictures, settings = gallery(lm, folder, out)
    html = explain_page(table, pictures, f"netscope vision explain: {folder}", settings)
    return write_text(Path(out) / "index.html", html)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _vision_merge(args) -> int:
    from netscope.vision.datasets.store import merge

    print(f"table: {merge(args.out, args.table)}")
    return 0
