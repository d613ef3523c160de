"""The tables the README's tour uses, made offline in a folder: grouped data of every target
kind (generated: random intercepts and slopes per group, a smooth nonlinearity, a text
feature and a few missing cells), so every command of the tour runs as written (the sample
photos are written beside them by ``vision.models.images.save_samples``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from netscope.files.atomic import write_text

TABLES = {  # file -> (group column, target column, what it is)
    "shops.csv": ("shop", "sales", "weekly sales of 40 shops (numbers)"),
    "visits.csv": ("clinic", "returned", "whether a patient came back, 30 clinics (yes/no)"),
    "claims.csv": ("region", "claims", "insurance claims per policy, 25 regions (counts)"),
    "trips.csv": ("city", "mode", "how a trip was made, 20 cities (walk, bus or car)"),
}


def write_examples(out: str | Path) -> list[Path]:
    """Write the tour's tables into ``out`` (and new_trips.csv, rows to predict)."""
    out = Path(out)
    rng = np.random.default_rng(0)
    written = [_table(out / "shops.csv", _shops(rng)), _table(out / "visits.csv", _visits(rng)),
               _table(out / "claims.csv", _claims(rng))]
    trips = _trips(rng, 20, 60)
    written.append(_table(out / "trips.csv", trips))
    fresh = _trips(np.random.default_rng(1), 21, 3).drop(columns="mode")  # city20 is new
    written.append(_table(out / "new_trips.csv", fresh))
    return written


def _table(path: Path, df: pd.DataFrame) -> Path:
    return write_text(path, df.to_csv(index=False))


def _groups(rng, groups: int, rows: int, prefix: str):
    g = np.repeat(np.arange(groups), rows)
    return g, [f"{prefix}{k:02d}" for k in g], rng.normal(0, 1, groups), rng.normal(0, 0.5,
                                                                                  groups)


def _shops(rng) -> pd.DataFrame:
    g, names, level, slope = _groups(rng, 40, 60, "shop")
    n = len(g)
    price = rng.uniform(2, 6, n)
    promo = rng.integers(0, 2, n)
    footfall = rng.normal(100, 20, n)
    weekday = rng.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], n)
    sales = (50 + 8 * level[g] - (4 + slope[g]) * price + 6 * promo + 0.2 * footfall
             + 5 * np.isin(weekday, ["sat", "sun"]) + 3 * np.sin(price) + rng.normal(0, 3, n))
    footfall[rng.uniform(size=n) < 0.03] = np.nan  # a few missing counts
    return pd.DataFrame({"shop": names, "price": price.round(2), "promo": promo,
                         "footfall": footfall.round(0), "weekday": weekday,
                         "sales": sales.round(1)})


def _visits(rng) -> pd.DataFrame:
    g, names, level, slope = _groups(rng, 30, 50, "clinic")
    n = len(g)
    age = rng.uniform(18, 90, n)
    distance = rng.exponential(10, n)
    insured = rng.choice(["yes", "no"], n, p=[0.7, 0.3])
    eta = level[g] + 0.02 * (age - 50) - (0.05 + 0.02 * slope[g]) * distance \
        + 0.8 * (insured == "yes") - 0.3
    returned = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-eta)), "yes", "no")
    return pd.DataFrame({"clinic": names, "age": age.round(0), "distance": distance.round(1),
                         "insured": insured, "returned": returned})


def _claims(rng) -> pd.DataFrame:
    g, names, level, slope = _groups(rng, 25, 60, "region")
    n = len(g)
    age = rng.uniform(18, 80, n)
    vehicle = rng.choice(["car", "van", "motorbike"], n, p=[0.6, 0.25, 0.15])
    exposure = rng.uniform(0.2, 1.0, n)
    rate = np.exp(-1 + 0.4 * level[g] - (0.02 + 0.01 * slope[g]) * (age - 40)
                  + 0.5 * (vehicle == "motorbike"))
    claims = rng.poisson(rate * exposure)
    return pd.DataFrame({"region": names, "age": age.round(0), "vehicle": vehicle,
                         "exposure": exposure.round(2), "claims": claims})


def _trips(rng, groups: int, rows: int) -> pd.DataFrame:
    g, names, level, slope = _groups(rng, groups, rows, "city")
    n = len(g)
    distance = rng.exponential(5, n)
    cost = rng.uniform(1, 10, n)
    weather = rng.choice(["dry", "rain"], n, p=[0.7, 0.3])
    logits = np.column_stack([np.zeros(n), 0.3 * distance + level[g] - 1,
                              0.5 * distance - 0.2 * cost + slope[g] + 0.5 * (weather == "rain")
                              - 2])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    mode = np.array(["walk", "bus", "car"])[(rng.uniform(size=(n, 1)) > p.cumsum(1)).sum(1)]
    return pd.DataFrame({"city": names, "distance": distance.round(1), "cost": cost.round(2),
                         "weather": weather, "mode": mode})
