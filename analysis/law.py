"""A fitted scaling law, the one object `pac allocate`, the figures and the reports use;
each approach's entry in fits.json is its serialization (`to_dict` / `from_dict`).

    laws = read_laws(fits)                            # {"approach3": ScalingLaw, ...}
    law = laws["approach3"]
    n_opt, d_opt = law.allocate(1e13)                 # compute -> compute-optimal N and D
    (n_lo, n_hi), (d_lo, d_hi) = law.allocation_interval(1e13)
    loss = law.predict(n, d)                          # approach 3 only: L(N, D)

Approaches 1 (envelope) and 2 (isoFLOP) fit power laws N_opt = G C^a and D_opt = G' C^b
(powerlaw.PowerLawFit), intervals from their bootstrap (log G, a) pairs; approach 3 fits
L(N, D) = E + A/N^alpha + B/D^beta (parametric.ParametricLaw), whose allocation is in
closed form, intervals from its bootstrap refits. Either way a law carries its status
(analysis.fit_status) and what its fit measured beside it (`record`: the envelope, the
isoFLOP profiles, approach 3's allocation table...), written back as it was read.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from analysis import fit_status
from analysis import load
from analysis.parametric import PARAM_NAMES, ParametricLaw
from analysis.powerlaw import PowerLawFit, as_float, ci_block, ci_key

APPROACHES = ("approach1", "approach2", "approach3")
# The keys of an entry that hold the law itself; any other key is its fit's record.
_POWER_KEYS = {"a", "b", "n_opt_fit", "d_opt_fit"}
_PARAMETRIC_KEYS = {*PARAM_NAMES, "a", "b", "G", "k", "k_by_size", "bootstrap"}
_STATUS_KEYS = {"status", "reasons", "error"}


@dataclasses.dataclass(frozen=True)
class ScalingLaw:
    """One approach's fitted law: compute -> compute-optimal (N, D), with intervals.

    Attributes:
      approach: 'approach1', 'approach2' or 'approach3'.
      n_opt, d_opt: approaches 1 and 2: N_opt = G C^a and D_opt = G' C^b.
      loss: approach 3: L(N, D), which allocates in closed form.
      refits: approach 3: its bootstrap refits, one batch of laws (None: none).
      ci: approach 3: intervals of its parameters and of a, b, G (approaches 1 and 2
        keep theirs in n_opt and d_opt).
      ci_level: coverage of `ci`.
      record: what the fit measured beside the law, in the file's order.
      status: 'ok', 'degenerate' or 'failed' (analysis.fit_status); None where not
        assessed (a file from before statuses).
      reasons: why a law is degenerate or failed.
      error: why it could not be fitted (then it holds no law).
    """

    approach: str
    n_opt: PowerLawFit | None = None
    d_opt: PowerLawFit | None = None
    loss: ParametricLaw | None = None
    refits: ParametricLaw | None = None
    ci: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    ci_level: float = 0.95
    record: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    status: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def failed(cls, approach: str, error: str) -> "ScalingLaw":
        return cls(approach, error=error)

    @classmethod
    def from_dict(cls, fitted: Mapping[str, Any], approach: str) -> "ScalingLaw":
        """From one approach's fits.json entry. A malformed entry raises TypeError,
        KeyError or ValueError (`pac allocate` names the file)."""
        if not isinstance(fitted, Mapping):
            raise TypeError(f"{approach}: a law is a JSON object, got {type(fitted).__name__}")
        status = {"status": fitted.get("status"), "reasons": tuple(fitted.get("reasons") or ())}
        if "error" in fitted:
            return cls(approach, error=str(fitted["error"]), **status)
        if approach == "approach3":
            level, ci = ci_block(fitted)
            refits = ParametricLaw.bootstrap_from_dict(fitted)
            return cls(approach, loss=ParametricLaw.from_dict(fitted), refits=refits, ci_level=level,
                       ci={name: tuple(as_float(v) for v in pair) for name, pair in ci.items()},
                       record=_record(fitted, _PARAMETRIC_KEYS), **status)
        return cls(approach, n_opt=PowerLawFit.from_dict(fitted["n_opt_fit"]),
                   d_opt=PowerLawFit.from_dict(fitted["d_opt_fit"]), record=_record(fitted, _POWER_KEYS), **status)

    def to_dict(self) -> dict[str, Any]:
        """The fits.json entry (NaN where a value could not be fitted; written as null)."""
        status = {} if self.status is None else {"status": self.status, "reasons": list(self.reasons)}
        if self.error is not None:
            return {"error": self.error} | status
        if self.loss is not None:
            k = load.as_flops_per_parameter(self.loss.k)
            refits = [] if self.refits is None else np.stack(
                [np.asarray(getattr(self.refits, name), np.float64) for name in PARAM_NAMES], axis=1).tolist()
            return ({name: float(getattr(self.loss, name)) for name in PARAM_NAMES}
                    | {ci_key(self.ci_level): {name: list(pair) for name, pair in self.ci.items()},
                       "a": float(self.loss.a), "b": float(self.loss.b), "G": float(self.loss.G), "k": k.median,
                       "k_by_size": k.to_dict()}
                    | dict(self.record) | {"bootstrap": refits} | status)
        return ({"a": self.a, "b": self.b,
                 ci_key(self.n_opt.ci_level): {"a": list(self.n_opt.ci.get("exponent", ())),
                                               "b": list(self.d_opt.ci.get("exponent", ()))},
                 "n_opt_fit": self.n_opt.to_dict(), "d_opt_fit": self.d_opt.to_dict()}
                | dict(self.record) | status)

    def assessed(self, min_loss: float | None = None, points: Any = None) -> "ScalingLaw":
        """This law with its status and reasons (analysis.fit_status.assess)."""
        verdict = fit_status.assess(self.approach, self.to_dict(), min_loss, points)
        return dataclasses.replace(self, status=verdict["status"], reasons=tuple(verdict["reasons"]))

    @property
    def ok(self) -> bool:
        """Whether the law may be drawn or used (fitted, and not found degenerate)."""
        return self.error is None and self.status in (None, "ok")

    @property
    def verdict(self) -> str | None:
        """The status; 'failed' for a law that could not be fitted even in a file from
        before statuses; None for a fitted law never assessed."""
        return self.status or ("failed" if self.error is not None else None)

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a."""
        return float(self.loss.a) if self.loss is not None else self.n_opt.exponent

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b."""
        return float(self.loss.b) if self.loss is not None else self.d_opt.exponent

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """The `ci_level` intervals by name: a and b (and approach 3's parameters and G)."""
        if self.loss is not None:
            return dict(self.ci)
        return {name: fit.ci["exponent"] for name, fit in (("a", self.n_opt), ("b", self.d_opt))
                if "exponent" in fit.ci}

    def predict(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The loss at parameters `n` and examples `d` (approach 3: only it fits L(N, D))."""
        if self.loss is None:
            raise ValueError(f"{self.approach} fits N_opt(C) and D_opt(C), not a loss; approach 3 predicts L(N, D)")
        return self.loss.predict(n, d)

    def allocate(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal (N_opt, D_opt) for training FLOPs `c`."""
        with np.errstate(all="ignore"):
            if self.loss is not None:
                return self.loss.allocate(c)
            return self.n_opt.predict(c), self.d_opt.predict(c)

    def allocation_interval(self, c: float, level: float = 0.95) -> tuple[tuple[float, float], tuple[float, float]]:
        """((N lo, hi), (D lo, hi)): the central `level` interval of the bootstrap's
        allocations at one budget `c`; NaN without a bootstrap."""
        with np.errstate(all="ignore"):
            if self.loss is not None:
                if self.refits is None:
                    return _interval(np.array([]), level), _interval(np.array([]), level)
                n, d = self.refits.allocate(c)
            else:
                n, d = self.n_opt.sample_predictions(c), self.d_opt.sample_predictions(c)
        return _interval(np.ravel(n), level), _interval(np.ravel(d), level)


def read_laws(fits: Mapping[str, Any], approaches: tuple[str, ...] = APPROACHES) -> dict[str, ScalingLaw]:
    """The laws of one group of a fits dict (fits.json's top level, one of its "groups",
    or one of "returns"' all/bc/pac), by approach; approaches it does not hold are left out."""
    return {name: ScalingLaw.from_dict(fits[name], name) for name in approaches if fits.get(name)}


def _record(fitted: Mapping[str, Any], law_keys: set[str]) -> dict[str, Any]:
    level_key = ci_key(ci_block(fitted)[0])
    return {k: v for k, v in fitted.items() if k not in law_keys | _STATUS_KEYS | {level_key}}


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)
