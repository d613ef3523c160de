"""`netscope data ...`: fetch and verify the reference data sets; write the tour's example
files."""

from __future__ import annotations

from pathlib import Path

from netscope.cli.common import progress_printer


def add(sub) -> None:
    data = sub.add_parser("data", help="the reference data sets")
    ds = data.add_subparsers(dest="action", required=True)
    fetch = ds.add_parser("fetch", help="download school and survey data into the cache "
                          "(SHA-256 verified)")
    fetch.add_argument("--dir", help="target folder (default: the cache)")
    fetch.add_argument("--from", dest="source", metavar="DIR",
                       help="copy from this local folder (verified) instead of downloading")
    fetch.set_defaults(func=_data_fetch)
    check = ds.add_parser("check", help="verify a data folder against the known checksums")
    check.add_argument("--data-dir", help="the folder to verify (default: $NETSCOPE_DATA, "
                       "else the cache)")
    check.set_defaults(func=_data_check)
    examples = ds.add_parser("examples", help="write the files the README's tour uses "
                             "(grouped tables of every target kind, sample photos) into a "
                             "folder, offline")
    examples.add_argument("--out", default="netscope-examples", help="the folder")
    examples.set_defaults(func=_data_examples)


def _data_fetch(args) -> int:
    from netscope.data.sources import fetch_all

    root = fetch_all(Path(args.dir) if args.dir else None, progress=progress_printer(False),
                     source=Path(args.source) if args.source else None)
    print(f"data ready in {root}")
    return 0


def _data_examples(args) -> int:
    from netscope.data.examples import TABLES, write_examples
    from netscope.files.folders import check_writable_dir
    from netscope.vision.models.images import save_samples

    check_writable_dir(args.out)
    written = write_examples(args.out) + save_samples(args.out)
    for name, (group, target, what) in TABLES.items():
        print(f"{Path(args.out) / name}: {what}; --task-column {group} --target-column "
              f"{target}")
    print(f"{len(written)} files in {args.out}/ (new_trips.csv: rows to predict; photos/ and "
          f"my.jpg: the sample photos); cd {args.out} to run the tour's commands as written")
    return 0


def _data_check(args) -> int:
    from netscope.data.sources import FILES, data_dir, sha256

    root, bad = data_dir(args.data_dir), 0
    for rel, remote in FILES.items():
        expected = remote.member_sha256 or remote.sha256
        path = root / rel
        status = "missing" if not path.is_file() else (
            "ok" if sha256(path) == expected else "CHECKSUM MISMATCH")
        bad += status != "ok"
        print(f"{status:18s} {path}")
    return 1 if bad else 0
