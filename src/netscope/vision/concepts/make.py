"""A dictionary from a folder, end to end: the sample pass, learning (checkpointed), its
quality, the saved dictionary and its tables (features, channels)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netscope.vision.concepts.learn import Learned, LearnSettings, learn
from netscope.vision.concepts.quality import Quality, channel_shares, quality
from netscope.vision.concepts.samples import Samples, SampleSettings, sample_folder
from netscope.vision.concepts.saved import save_dictionary
from netscope.vision.models.zoo import LoadedModel

CHECKPOINT = "learn-checkpoint.pt"
TOP_CHANNELS = 5  # channels listed per feature in features.csv


@dataclass
class MadeDictionary:
    learned: Learned
    quality: Quality
    samples: Samples
    files: dict[str, Path]


def make_dictionary(lm: LoadedModel, folder: str | Path, out: str | Path,
                    sampling: SampleSettings, learning: LearnSettings,
                    progress: Callable[[str], None] | None = None) -> MadeDictionary | None:
    """Sample, learn, measure and save (rank 0; None on the other ranks of a torchrun)."""
    say = progress or (lambda message: None)
    out = Path(out)
    samples = sample_folder(lm, folder, out, sampling, say)
    if samples is None:
        return None
    say(f"dictionary: {learning.method}, {learning.features} features from "
        f"{len(samples.x)} samples")
    learned = learn(samples.x, learning, out / CHECKPOINT, say)
    q = quality(learned, samples.x)
    files = {"dictionary": save_dictionary(
        out, learned, learning, lm.name, sampling.layer,
        {"quality": q.summary(), "samples": int(len(samples.x)),
         "images": len(samples.files) - len(samples.unreadable),
         "mean_code": [float(v) for v in q.mean_code]})}
    files.update(write_tables(out, learned, q))
    return MadeDictionary(learned, q, samples, files)


def write_tables(out: Path, learned: Learned, q: Quality) -> dict[str, Path]:
    """features.csv (usage, mean code, the channels each atom weighs most) and channels.csv
    (how many features each channel serves, and which)."""
    import pandas as pd

    from netscope.files.atomic import write_text

    def csv_text(rows: list[dict]) -> str:
        return pd.DataFrame(rows).to_csv(index=False)

    atoms = learned.model.atoms().detach().numpy()
    rows = []
    for k, atom in enumerate(atoms):
        top = np.argsort(-np.abs(atom))[:TOP_CHANNELS]
        rows.append({"feature": k, "usage": float(q.usage[k]),
                     "mean_code": float(q.mean_code[k]), "dead": bool(q.usage[k] == 0),
                     "top_channels": " ".join(f"{c}:{atom[c]:+.3f}" for c in top)})
    share = channel_shares(atoms, q.mean_code)
    channel_rows = []
    for c in range(atoms.shape[1]):
        part = share[:, c]
        main = [k for k in np.argsort(-part) if part[k] >= 0.1][:TOP_CHANNELS]
        channel_rows.append({"channel": c,
                             "features_per_channel": float(q.features_per_channel[c]),
                             "features": " ".join(f"{k}:{part[k]:.2f}" for k in main)})
    return {"features.csv": write_text(out / "features.csv", csv_text(rows)),
            "channels.csv": write_text(out / "channels.csv", csv_text(channel_rows))}
