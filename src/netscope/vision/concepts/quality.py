"""How good a dictionary is on activation samples, and what it says about the channels.

- explained variance: 1 - |X - X_hat|^2 / |X - mean(X)|^2 over every sample and channel;
- mean L0: the average number of non-zero codes per sample;
- dead features: features whose code is zero on every sample;
- usage: the share of samples on which each feature is active;
- features per channel (polysemanticity): for channel c, each feature's share of the
  channel's reconstructed activation, p_k = mean(z_k) |D_kc| / sum_j mean(z_j) |D_jc|, and
  its effective number exp(entropy(p)): 1 when one feature explains the channel, about m
  when m features take equal parts of it (a channel serving several features is
  polysemantic); 0 for a channel the dictionary barely uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netscope.vision.concepts.learn import BLOCK, Learned


@dataclass(frozen=True)
class Quality:
    explained_variance: float
    mean_l0: float
    dead: int
    usage: np.ndarray  # (K,) share of samples where the feature is active
    mean_code: np.ndarray  # (K,) mean code over the samples (original units)
    features_per_channel: np.ndarray  # (C,) effective number of features per channel

    def summary(self) -> dict:
        return {"explained_variance": self.explained_variance, "mean_l0": self.mean_l0,
                "dead_features": self.dead,
                "median_features_per_channel": float(np.median(self.features_per_channel))}


def quality(learned: Learned, samples) -> Quality:
    """The measures above on ``samples`` (n, C), streamed in blocks."""
    n, channels = samples.shape
    k = learned.model.features
    err = tot_sq = 0.0
    col_sum = np.zeros(channels)
    active = np.zeros(k)
    code_sum = np.zeros(k)
    l0 = 0.0
    for lo in range(0, n, BLOCK):
        x = torch.from_numpy(np.array(samples[lo:lo + BLOCK], dtype=np.float32))
        z = learned.encode(x)
        x_hat = (z @ learned.model.atoms().detach()) * learned.scale
        err += float(((x - x_hat).double() ** 2).sum())
        tot_sq += float((x.double() ** 2).sum())
        col_sum += x.double().sum(0).numpy()
        nz = (z > 0).double()
        active += nz.sum(0).numpy()
        l0 += float(nz.sum())
        code_sum += z.double().sum(0).numpy()
    total_var = tot_sq - float((col_sum**2).sum()) / n
    ev = 1.0 - err / total_var if total_var > 0 else float("nan")
    mean_code = code_sum / n * learned.scale
    return Quality(ev, l0 / n, int((active == 0).sum()), active / n, mean_code,
                   features_per_channel(learned.model.atoms().detach().numpy(), mean_code))


UNUSED = 1e-2  # a channel whose reconstruction is under this share of the largest one's


def channel_shares(atoms: np.ndarray, mean_code: np.ndarray) -> np.ndarray:
    """(K, C): each feature's share of each channel's mean reconstruction (|atom| times the
    positive mean code, divided by the channel's sum; 0 for a channel no feature uses)."""
    share = np.abs(atoms) * np.maximum(mean_code, 0)[:, None]
    total = share.sum(0)
    return np.where(total > 0, share / np.where(total > 0, total, 1), 0.0)


def features_per_channel(atoms: np.ndarray, mean_code: np.ndarray) -> np.ndarray:
    """exp(entropy) of each channel's split over the features (see the module docstring);
    a channel the dictionary barely uses (under ``UNUSED`` of the most used channel's
    reconstruction) gets 0: its split would be noise."""
    total = (np.abs(atoms) * np.maximum(mean_code, 0)[:, None]).sum(0)
    used = total >= UNUSED * total.max(initial=0.0)
    p = channel_shares(atoms, mean_code)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0).sum(0)
    return np.where(used & (total > 0), np.exp(entropy), 0.0)
