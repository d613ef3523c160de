"""A learned dictionary on disk: ``dictionary.pt`` (tensors only, loaded with
``weights_only=True``) and ``dictionary.json`` (method, model, layer, settings, scale,
quality), both written atomically. Loading checks the model and layer it is asked for, so a
dictionary is never applied to another layer's activations."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from netscope.errors import NetscopeError
from netscope.files.atomic import write_bytes, write_text
from netscope.vision.concepts.dictionaries import (
    NMF,
    ArchetypalSAE,
    BatchTopKSAE,
    Dictionary,
    TopKSAE,
)
from netscope.vision.concepts.learn import Learned, LearnSettings

STATE, META = "dictionary.pt", "dictionary.json"


def save_dictionary(out: str | Path, learned: Learned, settings: LearnSettings, model: str,
                    layer: str, extra: dict | None = None) -> Path:
    import io

    out = Path(out)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in learned.model.state_dict().items()}, buffer)
    write_bytes(out / STATE, buffer.getvalue())
    atoms = learned.model.atoms().detach()
    meta = {"format": 1, "method": settings.method, "model": model, "layer": layer,
            "features": int(atoms.shape[0]), "channels": int(atoms.shape[1]),
            "scale": learned.scale, "settings": asdict(settings),
            "losses": learned.losses, **(extra or {})}
    write_text(out / META, json.dumps(meta, indent=1))
    return out


def load_dictionary(folder: str | Path, model: str | None = None, layer: str | None = None
                    ) -> tuple[Learned, dict]:
    """The dictionary in ``folder`` and its description; ``model`` / ``layer``: refuse one
    learned on another."""
    folder = Path(folder)
    if not (folder / META).is_file() or not (folder / STATE).is_file():
        raise NetscopeError(f"{folder}: not a dictionary netscope wrote (needs {META} and "
                            f"{STATE}); `netscope vision dictionary` makes one.")
    try:
        meta = json.loads((folder / META).read_text())
        state = torch.load(folder / STATE, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - damaged or unsafe: say so, never unpickle
        raise NetscopeError(f"{folder}: the dictionary cannot be read safely ({exc}).") from None
    for what, want in (("model", model), ("layer", layer)):
        if want is not None and meta.get(what) != want:
            raise NetscopeError(f"{folder}: a dictionary of {what} {meta.get(what)!r}, not "
                                f"{want!r}; learn one for this {what} (`netscope vision "
                                f"dictionary --{what} ...`).")
    settings = LearnSettings(**meta["settings"])
    dictionary = _empty(settings, meta["channels"], state)
    dictionary.load_state_dict(state)
    return Learned(dictionary.eval(), float(meta["scale"]), list(meta.get("losses", []))), meta


def _empty(settings: LearnSettings, channels: int, state: dict) -> Dictionary:
    k, K = settings.k, settings.features
    if settings.method == "nmf":
        return NMF(state["dictionary"])
    if settings.method == "topk-sae":
        return TopKSAE(channels, K, k)
    if settings.method == "batchtopk-sae":
        return BatchTopKSAE(channels, K, k)
    if settings.method == "archetypal-sae":
        return ArchetypalSAE(channels, K, k, torch.zeros_like(state["dictionary.points"]))
    raise NetscopeError(f"unknown dictionary method {settings.method!r}.")
