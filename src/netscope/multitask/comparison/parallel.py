"""Splits fit in worker processes: the families are small programs that use one core well
and two badly, so independent splits side by side are the way to use a machine's cores.

Workers are spawned (not forked: a forked copy of a process that already ran PyTorch's
thread pool can deadlock), each runs one thread, and results come back in split order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from netscope.data.tasks import TaskData
from netscope.multitask.base import Progress
from netscope.multitask.comparison.fit_split import fit_split
from netscope.multitask.comparison.metrics import primary
from netscope.multitask.protocols import Protocol
from netscope.multitask.targets import KINDS


def _one_thread() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _work(data: TaskData, split, scale_from: str, settings, keys: Sequence[str], keep: bool):
    runs = fit_split(data, split, scale_from, settings, keys, None, keep)
    for run in runs:  # progress callbacks do not cross processes
        if run.model is not None and hasattr(run.model, "progress"):
            run.model.progress = None
    return runs


def fit_splits_in_processes(data: TaskData, protocol: Protocol, settings,
                            keys: Sequence[str], jobs: int,
                            progress: Progress | None = None) -> Iterator[list]:
    """``fit_split`` for every split of ``protocol`` on ``jobs`` processes, in split order."""
    splits = protocol.splits
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(splits)), mp_context=ctx,
                             initializer=_one_thread) as pool:
        futures = [pool.submit(_work, data, split, protocol.scale_from, settings, keys, i == 0)
                   for i, split in enumerate(splits)]
        try:
            for i, future in enumerate(futures):
                runs = future.result()
                if progress:
                    m = primary(KINDS[data.kind])
                    best = min(zip(keys, runs, strict=True), key=lambda kr: kr[1].scores[m.key])
                    progress(f"[{splits[i].name}] done ({i + 1}/{len(splits)}, {jobs} processes):"
                             f" best {best[0]}, test {m.header} {best[1].scores[m.key]:.4f}")
                yield runs
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
