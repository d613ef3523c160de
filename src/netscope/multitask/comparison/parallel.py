"""Splits fit in worker processes: the families are small programs that use one core well
and two badly, so independent splits (and independent groups of families) side by side are
the way to use a machine's cores, or a cluster's (Dask, through joblib's backend).

Workers are spawned (not forked: a forked copy of a process that already ran PyTorch's
thread pool can deadlock), each runs one thread, and results come back in split order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from netscope.data.tasks import TaskData
from netscope.errors import NetscopeError
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


def units(keys: Sequence[str]) -> list[list[str]]:
    """The families in groups that must run together (a family and those it reuses: the
    shared trunks and the pooled MLP, the ensemble and its members); each group is a unit
    of work, so the grid of splits x groups spreads over the workers without fitting any
    family twice."""
    from netscope.multitask.families import family

    group = {k: {k} for k in keys}
    for k in keys:
        for other in family(k).reuses:
            if other in group and group[other] is not group[k]:
                merged = group[k] | group[other]
                for member in merged:
                    group[member] = merged
    seen, out = set(), []
    for k in keys:
        if id(group[k]) not in seen:
            seen.add(id(group[k]))
            out.append([m for m in keys if m in group[k]])
    return out


def fit_splits_in_processes(data: TaskData, protocol: Protocol, settings,
                            keys: Sequence[str], jobs: int,
                            progress: Progress | None = None,
                            scheduler: str | None = None) -> Iterator[list]:
    """``fit_split`` for every split of ``protocol`` and every group of families
    (``units``) on ``jobs`` local processes, or on a Dask cluster (``scheduler``: its
    address) through joblib; the runs come back in split order, families in ``keys``
    order."""
    splits = protocol.splits
    groups = units(keys)
    work = [(i, split, group) for i, split in enumerate(splits) for group in groups]
    results = _dask(work, data, protocol, settings, scheduler) if scheduler else \
        _local(work, data, protocol, settings, jobs)
    where = f"Dask cluster at {scheduler}" if scheduler else f"{jobs} processes"
    done: dict[int, dict[str, object]] = {}
    for (i, _, group), runs in zip(work, results, strict=True):
        done.setdefault(i, {}).update(zip(group, runs, strict=True))
        if len(done[i]) < len(keys):
            continue
        runs_of = done.pop(i)
        ordered = [runs_of[k] for k in keys]
        if progress:
            m = primary(KINDS[data.kind])
            best = min(zip(keys, ordered, strict=True), key=lambda kr: kr[1].scores[m.key])
            progress(f"[{splits[i].name}] done ({i + 1}/{len(splits)}, {where}):"
                     f" best {best[0]}, test {m.header} {best[1].scores[m.key]:.4f}")
        yield ordered


def _local(work, data, protocol, settings, jobs: int) -> Iterator[list]:
    return spawned(_work, [(data, split, protocol.scale_from, settings, group, i == 0)
                           for i, split, group in work], jobs)


def spawned(fn, calls: list[tuple], jobs: int) -> Iterator:
    """``fn(*args)`` for each of ``calls`` in up to ``jobs`` spawned processes of one
    thread each; results in the order of ``calls`` (the rest cancelled if one fails)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(calls)), mp_context=ctx,
                             initializer=_one_thread) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _dask(work, data, protocol, settings, scheduler: str) -> Iterator[list]:
    """The same units on a Dask cluster, through joblib's Dask backend."""
    try:
        import joblib
        from distributed import Client
    except ImportError:
        raise NetscopeError("--backend dask needs Dask's distributed scheduler: pip install "
                            "'netscope[dask]' (dask and distributed).") from None
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise NetscopeError(f"--scheduler {scheduler}: no Dask scheduler answers there "
                            f"({exc}); start one (dask scheduler) or check the address.") \
            from None
    try:
        with joblib.parallel_config(backend="dask"):
            out = joblib.Parallel(return_as="generator")(
                joblib.delayed(_work_one_thread)(data, split, protocol.scale_from, settings,
                                                 group, i == 0) for i, split, group in work)
            yield from out
    finally:
        client.close()


def _work_one_thread(*args):
    _one_thread()
    return _work(*args)
