"""Testing with concept activation vectors (TCAV, Kim et al. 2018): does a concept, given as
example images, raise a class's score?

At a layer, a linear classifier separates the concept's activations (flattened, as Captum
does) from those of a random image set; its normal, pointing toward the concept, is the
concept activation vector (CAV). For each image of the class, the class score's gradient at
the layer dotted with the CAV is the score's directional derivative toward the concept; the
TCAV score is the share of images where it is positive (``sign_count``), beside its mean
(``magnitude``, as Captum reports it). A CAV is trained against each of several random
sets, and random sets against each other give the scores chance produces; a two-sided
t-test between the two lists (the paper's test) marks the concept significant or not.

The classifier is scikit-learn's ``SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3)`` on a
shuffled 67% of the examples, its accuracy measured on the rest (Captum's default).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture

MIN_EXAMPLES = 10  # images a concept or random set needs (the paper uses 50 or more)
ALPHA = 0.05  # the t-test's level


@dataclass(frozen=True)
class CAV:
    vector: np.ndarray  # (D,) toward the concept
    accuracy: float  # on the held-out third of the examples


@dataclass
class ConceptTest:
    """One concept at one layer for one class."""

    concept: str
    layer: str
    scores: list[float]  # sign_count against each random set
    magnitudes: list[float]
    accuracies: list[float]
    random_scores: list[float]  # random set against random set
    p_value: float
    extra: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    @property
    def significant(self) -> bool:
        return bool(self.p_value < ALPHA)


def layer_vectors(model: nn.Module, layer: str, x: torch.Tensor, batch: int = 32) -> np.ndarray:
    """(n, D) each image's activations at ``layer``, flattened."""
    ref = LayerRef.parse(layer)
    out = []
    for lo in range(0, len(x), batch):
        with capture(model, [ref]) as rec, torch.no_grad():
            model(x[lo:lo + batch])
            out.append(rec[ref].flatten(1).float().cpu().numpy())
    return np.concatenate(out)


def class_gradients(model: nn.Module, layer: str, x: torch.Tensor, target: int,
                    batch: int = 32) -> np.ndarray:
    """(n, D) the gradient of class ``target``'s score at ``layer``, flattened."""
    ref = LayerRef.parse(layer)
    out = []
    for lo in range(0, len(x), batch):
        with capture(model, [ref], cut=True) as rec:
            scores = model(x[lo:lo + batch])
            if not 0 <= target < scores.shape[-1]:
                raise NetscopeError(f"class {target} is not one of the model's "
                                    f"{scores.shape[-1]} classes.")
            acts = rec[ref]
            (grad,) = torch.autograd.grad(scores[:, target].sum(), acts)
        out.append(grad.flatten(1).float().cpu().numpy())
    return np.concatenate(out)


def train_cav(concept: np.ndarray, random: np.ndarray, seed: int = 0) -> CAV:
    """The CAV separating ``concept`` (n, D) from ``random`` (m, D) activations."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    X = np.concatenate([concept, random])
    y = np.r_[np.ones(len(concept)), np.zeros(len(random))]
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - 0.33)))
    train, test = order[:cut], order[cut:]
    clf = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
    with warnings.catch_warnings():  # separable sets stop by max_iter: the CAV's held-out
        warnings.simplefilter("ignore", ConvergenceWarning)  # accuracy says how well it
        clf.fit(X[train], y[train])  # separates
    accuracy = float((clf.predict(X[test]) == y[test]).mean()) if len(test) else float("nan")
    return CAV(clf.coef_[0].astype(np.float64), accuracy)


def tcav_score(gradients: np.ndarray, cav: CAV) -> tuple[float, float]:
    """(sign_count, magnitude) of the directional derivatives along the CAV."""
    d = gradients @ cav.vector
    return float((d > 0).mean()), float(d.mean())


def concept_test(name: str, layer: str, gradients: np.ndarray, concept: np.ndarray,
                 randoms: list[np.ndarray], seed: int = 0) -> ConceptTest:
    """The concept's scores against every random set, chance's scores (each random set
    against the next), and the two-sided t-test between them."""
    from scipy.stats import ttest_ind

    if len(randoms) < 2:
        raise NetscopeError("TCAV's significance test needs at least 2 random sets "
                            "(--random DIR twice or more; the paper uses many).")
    scores, magnitudes, accuracies = [], [], []
    for i, random in enumerate(randoms):
        cav = train_cav(concept, random, seed + i)
        s, m = tcav_score(gradients, cav)
        scores.append(s)
        magnitudes.append(m)
        accuracies.append(cav.accuracy)
    chance = [tcav_score(gradients, train_cav(randoms[i], randoms[(i + 1) % len(randoms)],
                                              seed + 1000 + i))[0]
              for i in range(len(randoms))]
    if np.std(scores) == 0 and np.std(chance) == 0:
        p = 0.0 if scores[0] != chance[0] else 1.0
    else:
        with warnings.catch_warnings():  # one list constant (all 1): scipy warns, the test
            warnings.simplefilter("ignore", RuntimeWarning)  # is still the t-test's
            p = float(ttest_ind(scores, chance).pvalue)
    return ConceptTest(name, layer, scores, magnitudes, accuracies, chance, p)


def check_examples(name: str, count: int) -> None:
    if count < MIN_EXAMPLES:
        raise NetscopeError(f"{name}: {count} readable image(s); a concept or random set "
                            f"needs at least {MIN_EXAMPLES} (the paper uses 50 or more).")
