"""The estimator contract shared by every model family, and saving/loading trained models.

scikit-learn style: ``__init__`` stores hyper-parameters, ``fit(X, y, tasks)`` returns self,
learned state ends in ``_``; ``predict(X, tasks)`` accepts the same task labels used in fit.
A saved model is a folder with ``config.json`` and ``state.pt`` (tensors only, loaded with
``weights_only=True``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netscope.errors import NetscopeError, row_at, shown

Progress = Callable[[str], None]
REGISTRY: dict[str, type[TaskEstimator]] = {}
UNSEEN = ("population", "error")
FORMAT = 2  # saved models: 2 tags tuples in config.json (1 wrote them as lists)
TUPLE = "__tuple__"


@dataclass(frozen=True)
class TaskRelations:
    """How a fitted model places the tasks relative to each other, for the report: a T x T
    ``correlation`` matrix (drawn clustered, and mapped in 2-D by MDS), or per-task
    ``embedding`` vectors (mapped in 2-D by PCA). ``source`` says what the numbers are."""

    kind: str  # "correlation" or "embedding"
    values: np.ndarray
    source: str
    file: str  # file-name stem of its pictures


class TaskEstimator:
    """Base class: maps task labels to indices, validates input, saves and loads."""

    label = "estimator"  # a readable name of the model, for reports and messages
    takes_missing = False  # True: missing feature values (NaN) are handled by the model

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("_abstract", False):  # a base of families, not a family
            REGISTRY[cls.__name__] = cls

    # -- scikit-learn contract -------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """scikit-learn's contract: every ``__init__`` parameter by name (``deep`` is
        accepted for compatibility: no netscope estimator holds another estimator)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params: Any) -> TaskEstimator:
        """scikit-learn's contract: change hyper-parameters by name (refit to apply)."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise NetscopeError(f"{type(self).__name__} has no parameter {name!r}; "
                                    f"valid: {', '.join(valid)}.")
            setattr(self, name, value)
        return self

    def settled(self) -> TaskEstimator:
        """An unfitted copy that reuses what this fit chose by searching (penalties, tree
        sizes, a starting point), so a refit on a subset of the rows (an ensemble's inner
        validation fit) skips the search. Families without a search copy their settings."""
        if not hasattr(self, "tasks_"):
            raise NetscopeError(f"{type(self).__name__} is not fitted yet; settled() copies "
                                f"what a fit chose, so call fit first.")
        return type(self)(**{**self.get_params(), **self._chosen()})

    def _saved_params(self) -> dict[str, Any]:
        """The parameters a saved model keeps: all but the progress callback."""
        return {k: v for k, v in self.get_params().items() if k != "progress"}

    def fit_summary(self) -> list[str]:
        """What this fit chose or found that a reader should know (penalties, weights,
        warnings such as a singular covariance), one line each; none by default."""
        return []

    def task_relations(self) -> TaskRelations | None:
        """What the report draws of how this model relates the tasks (None: nothing)."""
        return None

    def _chosen(self) -> dict[str, Any]:
        """Hyper-parameters that pin down what this fit's search chose (none by default)."""
        return {}

    def _repr_html_(self) -> str:
        """Jupyter shows an estimator as a table of its settings and, once fitted, its tasks
        and the choices its fit made (penalties and the like: attributes ending in _)."""
        import html as _html

        rows = [(k, repr(v)) for k, v in self.get_params().items()]
        if hasattr(self, "tasks_"):
            rows += [("tasks", _preview(self.tasks_)), ("features", str(self.n_features_in_))]
            rows += [(k, repr(v)) for k, v in vars(self).items()
                     if k.endswith("_") and not k.startswith("_") and k not in
                     ("tasks_", "n_features_in_") and isinstance(v, (int, float, tuple, str))]
        from netscope.render.notebook import fragment

        state = "fitted" if hasattr(self, "tasks_") else "not fitted"
        body = "".join(f"<tr><td>{_html.escape(k)}</td><td><code>{_html.escape(v)}</code></td>"
                       f"</tr>" for k, v in rows)
        return fragment(f"<p><b>{_html.escape(type(self).__name__)}</b> "
                        f"({_html.escape(self.label)}, {state})</p><table>{body}</table>")

    def __repr__(self) -> str:
        """Settings that differ from the defaults, and the tasks once fitted (as sklearn
        prints estimators, without the arrays)."""
        try:
            defaults = type(self)().get_params()
        except Exception:  # noqa: BLE001 - an estimator that needs arguments shows them all
            defaults = {}
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                            if not _same(v, defaults.get(k)))
        fitted = (f"; fitted on {len(self.tasks_)} tasks, {self.n_features_in_} features"
                  if hasattr(self, "tasks_") else "")
        return f"{type(self).__name__}({changed}){fitted}"

    def fit(self, X, y, tasks, fitted: Mapping[str, TaskEstimator] | None = None
            ) -> TaskEstimator:
        """Fit on rows ``X`` with targets ``y`` and task labels ``tasks``. ``fitted``: models
        of other families already fit on exactly these rows, by family key, that this one
        starts from or combines (its ``Family.reuses``); the others ignore it."""
        self._given = dict(fitted or {})
        try:
            return self._fit_checked(X, y, tasks)
        finally:
            self._given = {}

    def _fit_checked(self, X, y, tasks) -> TaskEstimator:
        X, y = self._check_X(X), self._check_y(y, X.shape[0] if hasattr(X, "shape") else None)
        labels = np.asarray(tasks).reshape(-1)
        if labels.shape[0] != X.shape[0]:
            raise NetscopeError(f"fit: {X.shape[0]} rows but {labels.shape[0]} task labels.")
        self.tasks_, t = np.unique(labels, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self._fit(X, y, t.reshape(-1), len(self.tasks_))
        return self

    def predict(self, X, tasks, unseen: str = "population") -> np.ndarray:
        """Predictions for rows ``X`` of ``tasks``. A task not seen in fit gets the model's
        population-level prediction (``unseen="population"``, said once through
        ``progress``) or an error (``unseen="error"``)."""
        if not hasattr(self, "tasks_"):
            raise NetscopeError(f"{type(self).__name__} is not fitted yet; call fit first.")
        if unseen not in UNSEEN:
            raise NetscopeError(f"predict: unseen must be one of {UNSEEN}, got {unseen!r}.")
        X = self._check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise NetscopeError(
                f"predict: X has {X.shape[1]} features but the model was fit on "
                f"{self.n_features_in_}."
            )
        t = self.task_index(tasks, X.shape[0], unseen)
        new = t < 0
        if not new.any():
            return self._predict(X, t)
        pop = self._predict_population(X[new])  # (rows,) or (rows, classes)
        out = np.empty((X.shape[0], *pop.shape[1:]))
        out[new] = pop
        if (~new).any():
            out[~new] = self._predict(X[~new], t[~new])
        if getattr(self, "progress", None):
            self.progress(f"{self.label}: {int(new.sum())} row(s) of "
                          f"{len(np.unique(np.asarray(tasks).reshape(-1)[new]))} task(s) not "
                          f"seen in fit get the population-level prediction")
        return out

    def predict_proba(self, X, tasks, unseen: str = "population") -> np.ndarray:
        """Class models: (n, K) probabilities of the classes in ``classes_`` order (yes/no:
        the first is 'no', the second 'yes')."""
        loss = getattr(self, "loss", "squared_error")
        if loss not in ("log_loss", "multinomial"):
            raise NetscopeError(f"{type(self).__name__} predicts numbers, not classes "
                                f"(loss {loss!r}); use predict.")
        p = self.predict(X, tasks, unseen)
        return p if p.ndim == 2 else np.column_stack([1.0 - p, p])

    def predict_labels(self, X, tasks, unseen: str = "population",
                       threshold: float = 0.5) -> np.ndarray:
        """Class models: each row's class (its name from ``classes_`` when the model knows
        them, else its code). Yes/no: the second class where its probability exceeds
        ``threshold``; several classes: the most probable one."""
        P = self.predict_proba(X, tasks, unseen)
        code = (P[:, 1] > threshold).astype(int) if P.shape[1] == 2 else P.argmax(1)
        names = getattr(self, "classes_", None)
        return np.asarray(names)[code] if names else code

    def _predict_population(self, X: np.ndarray) -> np.ndarray:
        """The prediction for a task never seen in fit. By default the average of every
        known task's prediction (for a linear model, the model with the mean weights);
        families with a population-level part (fixed effects, a shared head, the shared
        weights) override it."""
        total = self._predict(X, np.zeros(X.shape[0], np.int64))
        for k in range(1, len(self.tasks_)):
            total = total + self._predict(X, np.full(X.shape[0], k))
        return total / len(self.tasks_)

    def task_index(self, tasks, n_rows: int, unseen: str = "error") -> np.ndarray:
        """Each row's task position in ``tasks_``; -1 for a task not seen in fit (or an
        error naming it, with ``unseen="error"``)."""
        labels = np.asarray(tasks).reshape(-1)
        if labels.shape[0] != n_rows:
            raise NetscopeError(f"predict: {n_rows} rows but {labels.shape[0]} task labels.")
        try:
            pos = np.searchsorted(self.tasks_, labels)
        except TypeError:  # labels of another type than the fitted ones (text vs numbers)
            raise NetscopeError(f"predict: task labels {_preview(labels)} are not of the kind "
                                f"seen in fit ({_preview(self.tasks_)}).") from None
        pos = np.clip(pos, 0, len(self.tasks_) - 1)
        unknown = self.tasks_[pos] != labels
        if unknown.any() and unseen == "error":
            bad = labels[np.flatnonzero(unknown)[0]]
            raise NetscopeError(
                f"predict: task {shown(_label(bad))} was not seen in fit ({unknown.sum()} row(s)); "
                f"known tasks are {_preview(self.tasks_)}; unseen=\"population\" predicts "
                f"them at the population level."
            )
        return np.where(unknown, -1, pos)

    def _check_X(self, X) -> np.ndarray:
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise NetscopeError(f"X must be numeric ({exc}).") from None
        if X.ndim != 2 or X.shape[0] == 0:
            raise NetscopeError(f"X must be a non-empty 2-D array, got shape {X.shape}.")
        bad = np.isinf(X) if self.takes_missing else ~np.isfinite(X)
        if bad.any():
            col = int(np.flatnonzero(bad.any(axis=0))[0])
            raise NetscopeError(f"X column {col} holds NaN or infinity; fill missing values "
                                f"first (`netscope multitask run` and the protocols' "
                                f"prepare() impute them from training rows).")
        return X

    @staticmethod
    def _check_y(y, n_rows: int | None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if n_rows is not None and y.shape[0] != n_rows:
            raise NetscopeError(f"fit: {n_rows} rows in X but {y.shape[0]} targets.")
        if not np.isfinite(y).all():
            raise NetscopeError(f"y holds NaN or infinity (first at "
                                f"{row_at(int(np.flatnonzero(~np.isfinite(y))[0]))}).")
        return y

    # -- what subclasses provide -----------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray, t: np.ndarray, n_tasks: int) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/`` atomically: a temporary folder renamed into place when complete."""
        if not hasattr(self, "tasks_"):
            raise NetscopeError("cannot save a model that is not fitted.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            config = {
                "class": type(self).__name__, "params": _jsonable(self._saved_params()),
                "tasks": [_label(v) for v in self.tasks_.tolist()],
                "n_features": int(self.n_features_in_), "format": FORMAT,
                **({"classes": list(self.classes_)} if getattr(self, "classes_", None) else {}),
            }
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            torch.save({k: v.detach().cpu() for k, v in self._state().items()}, tmp / "state.pt")
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path


def load_model(path: str | Path) -> TaskEstimator:
    """Load a folder written by ``save``; tensors only (``weights_only=True``), never pickles."""
    path = Path(path)
    cfg_path, state_path = path / "config.json", path / "state.pt"
    if not cfg_path.is_file() or not state_path.is_file():
        raise NetscopeError(f"{path}: not a saved netscope model (needs config.json and state.pt).")
    try:
        config = json.loads(cfg_path.read_text())
        cls = REGISTRY.get(config["class"]) or _import_family(config["class"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise NetscopeError(f"{cfg_path}: unreadable model config ({exc}).") from None
    try:
        state = torch.load(state_path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a damaged or unsafe file
        raise NetscopeError(f"{state_path}: cannot be loaded safely ({exc}).") from None
    model = cls(**_from_json(config["params"], cls))
    model.tasks_ = np.asarray(config["tasks"])
    model.n_features_in_ = config["n_features"]
    if config.get("classes"):
        model.classes_ = tuple(config["classes"])
    model._set_state(state)
    return model


def _import_family(name: str) -> type[TaskEstimator]:
    """An estimator class by name, importing its module (a fresh process has not)."""
    import netscope.multitask as package

    if name not in package.__all__:
        raise KeyError(name)
    return getattr(package, name)


def _label(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _jsonable(value: Any) -> Any:
    """JSON for saved parameters; tuples are tagged so a load gives tuples back."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {TUPLE: [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _from_json(params: dict[str, Any], cls: type) -> dict[str, Any]:
    """Saved parameters as they were: tagged tuples back to tuples; in files of format 1
    (untagged), lists where the parameter's default is a tuple."""
    defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}

    def back(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {TUPLE}:
            return tuple(back(v) for v in value[TUPLE])
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v) for v in value]
        return value

    out = {k: back(v) for k, v in params.items()}
    for k, v in out.items():
        if isinstance(v, list) and isinstance(defaults.get(k), tuple):
            out[k] = tuple(tuple(e) if isinstance(e, list) else e for e in v)
    return out


def _preview(values: np.ndarray, k: int = 5) -> str:
    listed = ", ".join(shown(_label(v), 40) for v in values[:k])
    return listed + (f", ... ({len(values)} in all)" if len(values) > k else "")


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays
        return a is b
