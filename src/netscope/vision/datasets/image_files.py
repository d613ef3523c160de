"""A folder tree of images as a torch Dataset: decoding and preprocessing run in DataLoader
worker processes, and a file that cannot be read becomes a row with its error instead of
stopping the run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from netscope.errors import NetscopeError
from netscope.timing import time_left
from netscope.vision.models.images import IMAGE_SUFFIXES, load_image
from netscope.vision.models.zoo import Preprocess


def dataset_files(root: str | Path) -> list[str]:
    """Every image file under ``root`` (any depth), as sorted relative POSIX paths."""
    root = Path(root)
    if not root.is_dir():
        raise NetscopeError(f"{root}: not a folder; give the folder that holds the images.")
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise NetscopeError(f"{root}: no image files in this folder tree "
                            f"({', '.join(IMAGE_SUFFIXES)}).")
    return found


class ImageFiles(Dataset):
    """Item i: (i, the preprocessed (3, size, size) float32 image, '' or why it failed)."""

    def __init__(self, root: str | Path, files: list[str], pre: Preprocess) -> None:
        self.root, self.files = Path(root), files
        self.pre = Preprocess(pre.size, pre.mean, pre.std)  # CPU float32 in the workers

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        try:
            return i, self.pre.tensor(load_image(self.root / self.files[i]))[0], ""
        except NetscopeError as exc:
            error = str(exc).removeprefix(f"{self.root / self.files[i]}: ")
        except Exception as exc:  # a decoder bug on one odd file must not stop the dataset
            error = f"{type(exc).__name__}: {exc}"
        return i, torch.zeros(3, self.pre.size, self.pre.size), error


class RateLine:
    """A progress line at most every two seconds (and at the end): done/total, images/s,
    and while work remains, the time it will take at that rate (so a long pass says how
    long it will be within its first seconds)."""

    def __init__(self, what: str, total: int, say, start: float) -> None:
        self.what, self.total, self.say, self.start, self.last = what, total, say, start, start

    def tick(self, done: int, unreadable: int) -> None:
        import time

        now = time.perf_counter()
        if now - self.last >= 2 or done == self.total:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            self.say(f"{self.what}: {done}/{self.total} images, {rate:.1f} images/s, "
                     f"{unreadable} unreadable"
                     f"{time_left(now - self.start, done, self.total)}")


def default_workers() -> int:
    """Decoding processes: the CPUs beside the main process, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers decode; the main process computes
    np.seterr(all="ignore")


def loader(data: ImageFiles, indices: list[int], batch_size: int, workers: int,
           pin: bool = False) -> DataLoader:
    """Batches of the chosen items, in order, decoded by ``workers`` processes (in pinned
    memory with ``pin``, so copies to a GPU can overlap the computation)."""
    subset = torch.utils.data.Subset(data, indices)
    return DataLoader(subset, batch_size=batch_size, num_workers=workers, shuffle=False,
                      worker_init_fn=_one_thread if workers else None, pin_memory=pin,
                      persistent_workers=False, prefetch_factor=4 if workers else None)


def device_batches(data: ImageFiles, indices: list[int], batch_size: int, workers: int,
                   device: torch.device, dtype: torch.dtype):
    """Per batch: (the image indices, the readable ones' input on ``device`` or None when
    none could be read, their indices, {index: error} of the unreadable)."""
    for idx, x, errors in loader(data, indices, batch_size, workers, device.type == "cuda"):
        ids = idx.numpy()
        ok = np.array([e == "" for e in errors])
        failed = {int(i): str(e) for i, e in zip(ids[~ok], np.array(errors, dtype=object)[~ok],
                                                  strict=True)}
        xs = x[torch.from_numpy(ok)].to(device, non_blocking=True).to(dtype) if ok.any() \
            else None
        yield ids, xs, ids[ok], failed
