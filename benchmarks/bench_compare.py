"""Wall-clock of the whole comparison (every family, one split, lecture protocol).

    python benchmarks/bench_compare.py [--data-dir ../shared/data] [--protocol lecture]
"""

from __future__ import annotations

import argparse
import time

from netscope.data import load_school, load_survey
from netscope.multitask import protocols
from netscope.multitask.comparison.results import compare
from netscope.perf import configure
from netscope.render.comparison import text_report


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir")
    parser.add_argument("--protocol", default="lecture", choices=["lecture", "standard"])
    args = parser.parse_args()
    for loader in (load_school, load_survey):
        data = loader(args.data_dir)
        proto = (protocols.lecture(data) if args.protocol == "lecture"
                 else protocols.standard(data, args.data_dir))
        start = time.perf_counter()
        comp = compare(data, proto)
        total = time.perf_counter() - start
        print(text_report(comp))
        print(f"\n{data.name}: whole comparison ({len(proto.splits)} split(s), all families) "
              f"took {total:.1f} s\n")


if __name__ == "__main__":
    main()
