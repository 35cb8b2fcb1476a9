"""The move-out model: logistic regression on standardised features, Platt-calibrated on
cross-validated scores (scikit-learn), stored as plain JSON and applied with numpy.

Training uses scikit-learn (``CalibratedClassifierCV(..., method="sigmoid", cv=5,
ensemble=False)``: the calibrator is fitted on out-of-fold decision values, the classifier
on all examples). What it learns is a handful of numbers — imputation means, scales,
coefficients, intercept and the two Platt parameters — so a model version is a JSON
document in the registry (no pickles), reviewable, and scoring 100,000 leases is two
matrix operations. :func:`RiskModel.predict` equals scikit-learn's ``predict_proba``
(tested).

Reasons: the contribution of feature j to a lease's log-odds is coef_j × (x_j − mean_j) ÷
scale_j; the top positive contributions, each the feature's name with the lease's own value,
are its reasons (stored so, worded in the reader's language by ``cloud.risk.wording``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud.risk.features import FEATURES


@dataclass(frozen=True)
class RiskModel:
    """A fitted model over :data:`FEATURES` (order fixed)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt_a: float
    platt_b: float
    lo: np.ndarray  # each feature is clipped to the 1st–99th percentile seen in training:
    hi: np.ndarray  # a lease scored six months ahead is not extrapolated beyond it

    def _z(self, x: np.ndarray) -> np.ndarray:
        filled = np.clip(np.where(np.isnan(x), self.mean, x), self.lo, self.hi)
        return (filled - self.mean) / self.scale

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """The classifier's decision value per row (NaN features imputed by the mean)."""
        return self._z(x) @ self.coef + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated move-out probability per row of a leases × features matrix."""
        return 1.0 / (1.0 + np.exp(self.platt_a * self.log_odds(x) + self.platt_b))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per row and feature, the feature's share of the log-odds (0 for unknown)."""
        return self._z(x) * self.coef

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "logistic+platt",
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "platt_a": self.platt_a,
            "platt_b": self.platt_b,
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RiskModel:
        features = tuple(doc["features"])
        if features != FEATURES:
            raise ValueError(
                f"model features {features} are not this version's {FEATURES}; retrain the model"
            )
        return cls(
            features,
            np.asarray(doc["mean"], float),
            np.asarray(doc["scale"], float),
            np.asarray(doc["coef"], float),
            float(doc["intercept"]),
            float(doc["platt_a"]),
            float(doc["platt_b"]),
            np.asarray(doc["lo"], float),
            np.asarray(doc["hi"], float),
        )


def fit(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, seed: int = 0) -> RiskModel:
    """Train on a leases × features matrix and outcomes (1 = left, 0 = stayed)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"training needs both outcomes; got {len(y)} examples all "
            f"{'left' if len(y) and y[0] else 'stayed'}"
        )
    unknown = np.isnan(x).all(axis=0)  # a column never known: imputed 0, never clipped
    x = np.where(unknown, 0.0, x)
    mean = np.nanmean(x, axis=0)
    lo, hi = np.nanpercentile(x, 1, axis=0), np.nanpercentile(x, 99, axis=0)
    filled = np.clip(np.where(np.isnan(x), mean, x), lo, hi)
    scale = filled.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (filled - mean) / scale
    folds = max(2, min(5, int(np.bincount(y).min())))
    clf = CalibratedClassifierCV(
        LogisticRegression(C=c, max_iter=2000),
        method="sigmoid",
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        ensemble=False,
    )
    clf.fit(z, y)
    calibrated = clf.calibrated_classifiers_[0]
    lr, platt = calibrated.estimator, calibrated.calibrators[0]
    return RiskModel(
        FEATURES,
        mean,
        scale,
        lr.coef_[0].copy(),
        float(lr.intercept_[0]),
        float(platt.a_),
        float(platt.b_),
        lo,
        hi,
    )


# --- metrics ---------------------------------------------------------------------------


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties counted half), NaN without both outcomes."""
    y = np.asarray(y, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = np.asarray(score)[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def precision_at(y: np.ndarray, score: np.ndarray, share: float = 0.10) -> float:
    """Share of leavers among the ``share`` highest scores (at least one lease)."""
    k = max(1, round(len(score) * share))
    top = np.argsort(-np.asarray(score), kind="mergesort")[:k]
    return float(np.asarray(y, dtype=float)[top].mean())


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Predicted vs observed move-out rate per probability quantile bin."""
    order = np.argsort(p, kind="mergesort")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append(
                {
                    "n": len(part),
                    "predicted": round(float(p[part].mean()), 4),
                    "observed": round(float(np.asarray(y)[part].mean()), 4),
                }
            )
    return out


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """ROC AUC, precision at the top 10 %, Brier score, base rate and calibration bins."""
    y = np.asarray(y, dtype=float)
    return {
        "n": len(y),
        "base_rate": round(float(y.mean()), 4) if len(y) else None,
        "roc_auc": round(roc_auc(y, p), 4),
        "precision_top10": round(precision_at(y, p), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 4) if len(y) else None,
        "calibration": calibration_table(y, p),
    }


# --- reasons ---------------------------------------------------------------------------


def reasons(model: RiskModel, x: np.ndarray, top: int = 3) -> list[list[dict[str, Any]]]:
    """The ``top`` features raising each lease's risk the most, each as ``{"feature": NAME,
    "value": V}`` with the lease's own value rounded to 4 decimals (a known, finite value
    only); :mod:`cloud.risk.wording` words them for the reader."""
    contrib = model.contributions(x)
    order = np.argsort(-contrib, axis=1)[:, :top]
    out = []
    for i, row in enumerate(order):
        out.append(
            [
                {"feature": model.features[j], "value": round(float(x[i, j]), 4) + 0.0}
                for j in row
                if contrib[i, j] > 0.05 and np.isfinite(x[i, j])
            ]
        )
    return out
