"""Several classes from any yes/no model: one model per class against the rest, the K
probabilities normalized to sum to one (scikit-learn's ``OneVsRestClassifier``).

A family without its own several-class form (a softmax head, a multinomial likelihood)
gets this one from its yes/no form, so every family that takes yes/no targets takes
several classes too (``Family.for_kind``). Families that start from or combine others (the
shared trunk, the ensemble) get, for class k, the other families' class-k models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.multitask.base import Progress, TaskEstimator, TaskRelations


class OneVsRest(TaskEstimator):
    """K yes/no models of ``family`` (its binary form, built with ``member`` keywords)."""

    label = "one-vs-rest"
    loss = "multinomial"  # what it predicts: a probability per class

    def __init__(self, *, family: str = "ridge-per-task", member: dict[str, Any] | None = None,
                 chosen: tuple[dict[str, Any], ...] | None = None,
                 progress: Progress | None = None) -> None:
        self.family = family
        self.member = member  # the yes/no estimator's keywords (None: its defaults)
        self.chosen = chosen  # per class, what an earlier fit's search chose (settled())
        self.progress = progress

    @property
    def takes_missing(self) -> bool:  # type: ignore[override]
        """As its yes/no models: trees take missing values as they are."""
        return self._member_class().takes_missing

    def _member_class(self) -> type[TaskEstimator]:
        from netscope.multitask.families import FAMILIES

        if self.family not in FAMILIES or "binary" not in FAMILIES[self.family].forms:
            raise NetscopeError(f"one-vs-rest: {self.family!r} is not a family with a yes/no "
                                f"form.")
        return FAMILIES[self.family].estimator_class()

    def _build(self, k: int) -> TaskEstimator:
        def said(line: str) -> None:
            self.progress(f"class {self._name(k)} vs rest: {line}")

        settled = self.chosen[k] if self.chosen and k < len(self.chosen) else {}
        return self._member_class()(**{**(self.member or {}), **settled},
                                    progress=said if self.progress else None)

    def _name(self, k: int) -> str:
        names = getattr(self, "classes_", None)
        return str(names[k]) if names and k < len(names) else str(k)

    def _fit(self, X, y, t, n_tasks) -> None:
        codes = y.astype(np.int64)
        if (codes != y).any() or codes.min() < 0:
            raise NetscopeError("one-vs-rest: class codes must be whole numbers 0..K-1.")
        self.n_classes_ = int(codes.max()) + 1
        if self.n_classes_ < 3:
            raise NetscopeError(f"one-vs-rest: needs at least 3 classes in the training rows, "
                                f"got {self.n_classes_}; fit a yes/no model instead.")
        odd = [key for key, other in self._given.items() if not isinstance(other, OneVsRest)]
        if odd:
            raise NetscopeError(f"one-vs-rest: it combines the class-k models of "
                                f"{', '.join(odd)}, so those need one-vs-rest fits too.")
        self.members_ = []
        for k in range(self.n_classes_):
            reused = {key: other.members_[k] for key, other in self._given.items()}
            self.members_.append(self._build(k).fit(X, (codes == k).astype(np.float64), t,
                                                    fitted=reused))

    def _chosen(self) -> dict[str, Any]:
        return {"chosen": tuple(m._chosen() for m in self.members_)}

    def _normalized(self, parts: list[np.ndarray]) -> np.ndarray:
        P = np.clip(np.column_stack(parts), 0.0, 1.0)
        total = P.sum(1, keepdims=True)
        return np.where(total > 0, P / np.where(total > 0, total, 1.0), 1.0 / P.shape[1])

    def _predict(self, X, t) -> np.ndarray:
        return self._normalized([m._predict(X, t) for m in self.members_])

    def _predict_population(self, X) -> np.ndarray:
        return self._normalized([m._predict_population(X) for m in self.members_])

    def fit_summary(self) -> list[str]:
        return [f"class {self._name(k)} vs rest: {line}"
                for k, m in enumerate(self.members_) for line in m.fit_summary()]

    def task_relations(self) -> TaskRelations | None:
        """The first class's model's view of the tasks (each class has its own)."""
        rel = self.members_[0].task_relations()
        if rel is None:
            return None
        return TaskRelations(rel.kind, rel.values, f"{rel.source} (class {self._name(0)} vs "
                             f"rest)", rel.file)

    def _state(self) -> dict[str, torch.Tensor]:
        state = {"n_classes": torch.tensor(self.n_classes_)}
        for k, m in enumerate(self.members_):
            state.update({f"class{k}.{name}": v for name, v in m._state().items()})
        return state

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.n_classes_ = int(state["n_classes"])
        self.members_ = []
        for k in range(self.n_classes_):
            m = self._member_class()(**(self.member or {}))
            m.tasks_, m.n_features_in_ = np.arange(len(self.tasks_)), self.n_features_in_
            prefix = f"class{k}."
            m._set_state({name[len(prefix):]: v for name, v in state.items()
                          if name.startswith(prefix)})
            self.members_.append(m)
