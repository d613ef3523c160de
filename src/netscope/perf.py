"""Process-level speed settings: malloc thresholds (the command line and benchmarks) and
the number of PyTorch threads (the command line, and the library on first use unless the
user chose; see ``library_threads``).

PyTorch on CPU allocates and frees many large temporary tensors. glibc's malloc hands
blocks above its mmap threshold straight back to the kernel, so every step pays for fresh
page faults (seen here: 2x slower batched gradient ascent, mostly system time). Raising the
mmap and trim thresholds keeps that memory in the heap for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_done = False


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied (Linux/glibc)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _done = ok
    return ok


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return total - idle, total


def busy_cpus(window: float = 0.05) -> float:
    """CPUs that other processes keep busy right now: /proc/stat sampled over ``window``
    seconds while this process sleeps. (The load average lags a minute behind and counts
    this program's own previous runs; elsewhere it is the fallback.)"""
    try:
        busy0, total0 = _cpu_times()
        time.sleep(window)
        busy1, total1 = _cpu_times()
        if total1 > total0:
            return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _torch_cap() -> int:
    """The most threads PyTorch would use by itself: $OMP_NUM_THREADS, else the usable
    CPUs; read without importing torch (which takes seconds)."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return usable_cpus()


def auto_threads() -> int:
    """PyTorch threads that will not fight other processes for the CPUs.

    PyTorch's OpenMP workers spin while they wait for each other; when another process holds
    one of their cores, every parallel region waits for a time slice. Measured on the 2-core
    development machine with one core busy: 2 threads ran saliency 5.9x and a small MLP 8x
    slower than 1 thread (BENCHMARKS.md). So use only the CPUs that are idle now, at least one.
    """
    free = usable_cpus() - round(busy_cpus())
    return max(1, min(_torch_cap(), free))


_chosen: int | None = None  # what set_threads chose for this process


def set_threads(requested: int | None = None) -> int:
    """Set PyTorch's intra-op threads: ``requested``, else $NETSCOPE_THREADS, else
    :func:`auto_threads`. Returns the number in use. When torch is not imported yet, the
    number is handed to it through $OMP_NUM_THREADS, so a command can check its arguments
    before paying for the import."""
    global _chosen
    from netscope.errors import NetscopeError

    n = requested
    if n is None and os.environ.get("NETSCOPE_THREADS", "").strip():
        text = os.environ["NETSCOPE_THREADS"].strip()
        if not text.isdigit() or int(text) < 1:
            raise NetscopeError(f"NETSCOPE_THREADS must be a whole number >= 1, got "
                                f"{text[:40]!r}.")
        n = int(text)
    n = n or auto_threads()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
    _chosen = n
    return n


def library_threads() -> int | None:
    """The command line's thread default, applied once when the library is first used
    (``from netscope.vision import ...``), so a notebook on a busy machine does not wait
    on cores other processes hold (2.2-2.5 s per call instead of 0.07 s, measured).

    Left alone when the threads were chosen: by :func:`set_threads`, by $NETSCOPE_THREADS,
    $OMP_NUM_THREADS or $MKL_NUM_THREADS, or by ``torch.set_num_threads`` to a number other
    than torch's own default, before this first use. Call ``torch.set_num_threads`` after
    it (or ``netscope.perf.set_threads(n)``) to choose yourself. Returns the number set, or
    None when left alone."""
    global _chosen
    if _chosen is not None:
        return None
    if any(os.environ.get(k, "").strip() for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        _chosen = 0  # the user's environment decides
        return None
    if not os.environ.get("NETSCOPE_THREADS", "").strip() and "torch" in sys.modules:
        if sys.modules["torch"].get_num_threads() not in (usable_cpus(), physical_cores()):
            _chosen = 0  # torch.set_num_threads was called: the user's choice
            return None
    import torch  # noqa: F401 - set the threads on torch itself, not through the environment

    return set_threads()


def physical_cores() -> int:
    """Cores (not hyper-threads) among the usable CPUs: torch's own default thread count."""
    try:
        cpus = os.sched_getaffinity(0)
        with open("/proc/cpuinfo") as f:
            blocks = f.read().split("\n\n")
    except (AttributeError, OSError):
        return usable_cpus()
    cores = set()
    for block in blocks:
        info = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        if info.get("processor", "").isdigit() and int(info["processor"]) in cpus:
            cores.add((info.get("physical id"), info.get("core id"), info["processor"]
                       if "core id" not in info else None))
    return len(cores) or usable_cpus()


def configure(threads: int | None = None) -> str:
    """What the netscope command does for speed (malloc thresholds, thread count), for
    benchmarks; returns the line they print so every figure says how many threads ran."""
    busy = busy_cpus()
    tune_malloc()
    n = set_threads(threads)
    return (f"PyTorch threads: {n} of {usable_cpus()} CPUs ({busy:.1f} busy with other "
            f"processes at start; set --threads or NETSCOPE_THREADS to override)")


_CONTROLLER = None


def blas_threads(limit: int):
    """A context manager limiting BLAS to ``limit`` threads. The library scan behind
    ``threadpool_limits`` costs milliseconds once torch is loaded, which adds up in code that
    limits threads around many small solves, so the scan is done once and kept."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=limit, user_api="blas")
