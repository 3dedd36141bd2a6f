"""Approach 3: the parametric loss L(N, D) = E + A / N^alpha + B / D^beta.

Fitted as in Hoffmann et al. 2022 and its replication (Besiroglu et al. 2024), see
`shared/reference/README.md`:

    log L(N, D) = LSE(a - alpha log N, b - beta log D, e),  A = e^a, B = e^b, E = e^e,

minimising the sum over runs of Huber_delta(log L_pred - log L_obs) (delta = 1e-3) with
L-BFGS from every point of a grid of starts, keeping the best. Confidence intervals come
from bootstrap resamples of the runs.

Speed: the objective (with a hand-fused gradient) and L-BFGS are written in JAX for a
batch of starts, so the 4,500-start grid is one batched solve. The L-BFGS is our own
rather than a vmapped optax.lbfgs: vmapping a per-start line-search loop makes every
iteration as slow as the slowest start's search (measured ~20x slower here); ours
takes one batched evaluation per iteration and regroups the unfinished starts into
smaller batches between rounds (see `_lbfgs_round` and `_solve`). A bootstrap
resample is expressed as integer weights on the runs (how many times each run was
drawn), so every refit has the same shapes and all refits are one batched solve too.
Refits start from the best few *distinct* full-data solutions rather than the whole grid
(`ParametricConfig.bootstrap_starts`, default 8): the full grid (4,500 starts) takes
~8 s warm on 2 CPU cores for 240 runs, so 1,000 full-grid refits would take over two
hours, while 8,000 near-optimum starts take ~10-15 s. On the Chinchilla data 1,300 of
the 4,500 grid starts reach the same optimum and the rest stall on plateaus with a
20x worse objective, so a resample's optimum is near one of the best full-data basins.

Precision: everything runs in float64 inside `jax.enable_x64(True)`, a context manager,
so 64-bit mode never leaks into the rest of the process (training runs in float32/bf16).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import time
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from analysis import load
from analysis.powerlaw import as_float

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0  # at most one progress line this often

PARAM_NAMES: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
# Quantities derived from the parameters that get bootstrap CIs as well.
DERIVED_NAMES: tuple[str, ...] = ("a", "b", "G")


@dataclasses.dataclass(frozen=True)
class ParametricConfig:
    """How the parametric law is fitted.

    Attributes:
        delta: Huber threshold on the log-loss residual (1e-3 as in Chinchilla).
        alpha_grid: starting values of alpha (the grid is the product of all five axes).
        beta_grid: starting values of beta.
        e_grid: starting values of e = log E.
        a_grid: starting values of a = log A.
        b_grid: starting values of b = log B.
        max_evals: objective evaluations per start (the loop stops earlier once every
      start converged); one L-BFGS iteration or one line-search backtrack each.
        grad_tol: stop a start when the gradient norm of the summed Huber objective is
            below this (the objective is ~delta * n * |residual|, so absolute values are tiny).
        n_bootstrap: bootstrap refits for the CIs (0 for none).
        bootstrap_starts: distinct best full-data solutions that each refit starts from.
        ci: central coverage of the reported intervals.
        seed: bootstrap resampling seed.
    """

    delta: float = 1e-3
    alpha_grid: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    beta_grid: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    e_grid: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    a_grid: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    b_grid: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    max_evals: int = 1000
    grad_tol: float = 1e-10
    n_bootstrap: int = 1000
    bootstrap_starts: int = 8
    ci: float = 0.95
    seed: int = 0

    def init_grid(self) -> np.ndarray:
        """All starting points, shape (S, 5), in the solver's order (a, b, e, alpha, beta)."""
        grid = itertools.product(self.a_grid, self.b_grid, self.e_grid, self.alpha_grid, self.beta_grid)
        return np.asarray(list(grid), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ParametricLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta with C = k N D: the one place the law is
    evaluated (the fit's point estimate, its bootstrap band, the figures).

    Fields are scalars (one law) or arrays of equal shape S (a batch of laws, e.g. the
    bootstrap refits); `predict` and `allocate` then return shape S + shape(inputs).
    """

    E: np.ndarray | float
    A: np.ndarray | float
    B: np.ndarray | float
    alpha: np.ndarray | float
    beta: np.ndarray | float
    k: "float | load.FlopsPerParameter" = 6.0  # C = k N D; per model size where measured

    @classmethod
    def from_dict(cls, fitted: Mapping[str, Any]) -> "ParametricLaw":
        """From fits.json's "approach3" entry (or any mapping with E, A, B, alpha, beta, k)."""
        by_size = fitted.get("k_by_size")
        k = (load.FlopsPerParameter(tuple(np.log(by_size["N"]).tolist()), tuple(by_size["k"])) if by_size
             else float(fitted.get("k", 6.0)))
        return cls(*(as_float(fitted[name]) for name in PARAM_NAMES), k=k)

    @classmethod
    def bootstrap_from_dict(cls, fitted: Mapping[str, Any]) -> "ParametricLaw | None":
        """The batch of bootstrap refits stored in a fits.json "approach3" entry (None if none)."""
        refits = np.asarray(fitted.get("bootstrap") or [], dtype=np.float64)
        if refits.ndim != 2 or len(refits) < 2:
            return None
        return dataclasses.replace(cls.from_dict(fitted), **dict(zip(PARAM_NAMES, refits.T)))

    def examples(self, c: np.ndarray, n: np.ndarray) -> np.ndarray:
        """D = C / (k(N) N): the examples a model of size N sees for C FLOPs."""
        return np.asarray(c, np.float64) / (load.as_flops_per_parameter(self.k)(n) * np.asarray(n, np.float64))

    def _batched(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The parameters shaped to broadcast against inputs of x's shape."""
        x = np.asarray(x, dtype=np.float64)
        params = [np.asarray(getattr(self, n), dtype=np.float64) for n in PARAM_NAMES]
        return tuple(p.reshape(p.shape + (1,) * x.ndim) for p in params)

    @property
    def a(self) -> np.ndarray | float:
        """Exponent of N_opt ∝ C^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> np.ndarray | float:
        """Exponent of D_opt ∝ C^b (a + b = 1)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> np.ndarray | float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)); NaN where there is no allocation."""
        return _allocation_g(self.A, self.B, self.alpha, self.beta)

    def predict(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Predicted loss at parameters `n` and examples/tokens `d`."""
        n, d = np.broadcast_arrays(np.asarray(n, np.float64), np.asarray(d, np.float64))
        E, A, B, alpha, beta = self._batched(n)
        with np.errstate(all="ignore"):
            return E + A / n**alpha + B / d**beta

    def allocate(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal (N_opt, D_opt) for FLOPs `c`, in closed form:
        N_opt = G (C/k)^(beta/(alpha+beta)), D_opt = C / (k N_opt). Where k depends on the
        model size, N_opt = G (C / k(N_opt))^a is solved by fixed-point iteration: the closed
        form at the optimum's own k (it neglects dk/dN, which is small: k varies by ~10%
        over the demo's sizes)."""
        k_of = load.as_flops_per_parameter(self.k)
        c = np.asarray(c, dtype=np.float64)
        E, A, B, alpha, beta = self._batched(c)
        g = np.asarray(_allocation_g(A, B, alpha, beta))
        with np.errstate(all="ignore"):
            a = beta / (alpha + beta)
            n = g * (c / k_of.median) ** a
            if len(k_of.k) > 1:
                for _ in range(50):
                    n = g * (c / k_of(np.where(np.isfinite(n), n, 1.0))) ** a
            return n, c / (k_of(np.where(np.isfinite(n), n, 1.0)) * n)


@dataclasses.dataclass(frozen=True)
class ParametricFit:
    """A fitted L(N, D) = E + A / N^alpha + B / D^beta, with bootstrap CIs.

    Attributes:
        E, A, B, alpha, beta: point estimates (best of all grid starts on all runs).
        objective: the summed Huber objective at the estimate.
        n_points: runs used.
        n_starts: grid starts tried for the point estimate.
        k: FLOPs per parameter per example, C = k N D, used by `allocate`.
        ci: central `ci_level` intervals for PARAM_NAMES + DERIVED_NAMES (empty: none).
        ci_level: coverage of `ci`.
        n_bootstrap: refits behind `ci`.
        bootstrap: (n_bootstrap, 5) refitted (E, A, B, alpha, beta), or None.
        seconds: wall time of the fit including the bootstrap.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    n_points: int
    n_starts: int
    k: "float | load.FlopsPerParameter" = 6.0
    ci: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    ci_level: float = 0.95
    n_bootstrap: int = 0
    bootstrap: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    seconds: float = 0.0

    @property
    def law(self) -> ParametricLaw:
        """The point estimate as a law."""
        return ParametricLaw(self.E, self.A, self.B, self.alpha, self.beta, self.k)

    @property
    def bootstrap_laws(self) -> ParametricLaw | None:
        """The bootstrap refits as one batch of laws (shape [n_bootstrap]), or None."""
        if self.bootstrap is None or len(self.bootstrap) == 0:
            return None
        return ParametricLaw(*self.bootstrap.T, k=self.k)

    @property
    def a(self) -> float:
        return self.law.a

    @property
    def b(self) -> float:
        return self.law.b

    @property
    def G(self) -> float:
        return self.law.G

    def params(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in PARAM_NAMES}

    def predict(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Predicted loss at parameters `n` and examples/tokens `d`."""
        return self.law.predict(n, d)

    def allocate(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal (N_opt, D_opt) for FLOPs `c` (see ParametricLaw.allocate)."""
        return self.law.allocate(c)

    def tokens_per_parameter(self, c: np.ndarray) -> np.ndarray:
        """D_opt / N_opt at FLOPs `c` (Chinchilla's famous ~20 for LMs)."""
        n, d = self.allocate(c)
        return d / n


def _allocation_g(A, B, alpha, beta):
    """G, or NaN where the fit has no compute-optimal allocation (an exponent <= 0: loss
    that does not fall with N or with D, as on noisy, under-trained grids)."""
    A, B, alpha, beta = (np.asarray(v, dtype=np.float64) for v in (A, B, alpha, beta))
    ok = (alpha > 0) & (beta > 0) & (A > 0) & (B > 0)
    with np.errstate(all="ignore"):
        g = np.where(ok, (np.abs(alpha * A / (beta * B))) ** (1.0 / np.where(ok, alpha + beta, 1.0)), np.nan)
    return float(g) if g.ndim == 0 else g


def _log_predict(x: jax.Array, log_n: jax.Array, log_d: jax.Array) -> jax.Array:
    """log L in log-sum-exp form for one parameter vector x = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = x[0], x[1], x[2], x[3], x[4]
    terms = jnp.stack([a - alpha * log_n, b - beta * log_d, jnp.broadcast_to(e, log_n.shape)])
    return jax.nn.logsumexp(terms, axis=0)


def _objective(x, log_n, log_d, log_loss, weights, delta):
    """Summed Huber loss of the log residuals for one x (the reference definition).

    Weights are bootstrap multiplicities (all ones for the plain fit). The sum, not the
    mean, as in the replication, so objective values compare with theirs.
    """
    residual = _log_predict(x, log_n, log_d) - log_loss
    return jnp.sum(weights * optax.losses.huber_loss(residual, delta=delta))


def _value_and_grad(x, weights, log_n, log_d, log_loss, delta):
    """`_objective` and its gradient for a batch x (S, 5), weights (S, n), fused by hand.

    Equal to `jax.vmap(jax.value_and_grad(_objective))` (tested) but one pass over the
    (S, n) residuals instead of a forward and a reverse pass: the three exponentials of
    the log-sum-exp are reused as the softmax weights of its gradient. This is the cost
    of the whole fit, so it is worth the few lines.
    """
    a, b, e, alpha, beta = (x[:, i:i + 1] for i in range(5))
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    u3 = jnp.broadcast_to(e, u1.shape)
    m = jnp.maximum(jnp.maximum(u1, u2), u3)
    e1, e2, e3 = jnp.exp(u1 - m), jnp.exp(u2 - m), jnp.exp(u3 - m)
    z = e1 + e2 + e3
    residual = m + jnp.log(z) - log_loss
    value = jnp.sum(weights * optax.losses.huber_loss(residual, delta=delta), axis=1)
    # d Huber / d residual = clip(residual, -delta, delta); d LSE / d u_i = e_i / z.
    c = weights * jnp.clip(residual, -delta, delta) / z
    grad = jnp.stack([
        jnp.sum(c * e1, axis=1), jnp.sum(c * e2, axis=1), jnp.sum(c * e3, axis=1),
        -jnp.sum(c * e1 * log_n, axis=1), -jnp.sum(c * e2 * log_d, axis=1)], axis=1)
    return value, grad


class _State(NamedTuple):
    """Batched L-BFGS state; every leading axis is the start (S)."""

    x: jax.Array  # (S, P) current points
    f: jax.Array  # (S,) objective values
    g: jax.Array  # (S, P) gradients
    s: jax.Array  # (S, M, P) last M steps x_{k+1} - x_k (circular)
    y: jax.Array  # (S, M, P) last M gradient changes g_{k+1} - g_k
    rho: jax.Array  # (S, M) 1 / <s, y>, 0 for empty or skipped slots
    pairs: jax.Array  # (S,) int, curvature pairs stored so far
    step: jax.Array  # (S,) step length to try next along the current direction
    active: jax.Array  # (S,) bool, False once a start has converged or stalled
    evaluations: jax.Array  # (S,) int, objective evaluations each start has used
    iteration: jax.Array  # () int


def _direction(state: _State, memory: int) -> jax.Array:
    """Two-loop recursion, vectorised over starts: returns -H g."""
    q = state.g
    alphas = []
    # Newest to oldest; slot of the j-th newest pair is (pairs - 1 - j) mod M. Empty or
    # skipped slots have rho = 0 and drop out.
    for j in range(memory):
        slot = (state.pairs - 1 - j) % memory
        s = jnp.take_along_axis(state.s, slot[:, None, None], axis=1)[:, 0]
        y = jnp.take_along_axis(state.y, slot[:, None, None], axis=1)[:, 0]
        rho = jnp.take_along_axis(state.rho, slot[:, None], axis=1)[:, 0]
        a = rho * jnp.sum(s * q, axis=-1)
        q = q - a[:, None] * y
        alphas.append((s, y, rho, a))
    s_new, y_new, rho_new, _ = alphas[0]
    yy = jnp.sum(y_new * y_new, axis=-1)
    gamma = jnp.where(rho_new > 0, jnp.sum(s_new * y_new, axis=-1) / jnp.maximum(yy, 1e-300), 1.0)
    r = gamma[:, None] * q
    for s, y, rho, a in reversed(alphas):
        b = rho * jnp.sum(y * r, axis=-1)
        r = r + (a - b)[:, None] * s
    return -r


_MEMORY = 10  # L-BFGS curvature pairs
_ROUND = 100  # evaluations between compactions of the batch


def _init_state(value_and_grad, x0: jax.Array) -> _State:
    f0, g0 = value_and_grad(x0)
    num, dim = x0.shape
    zeros = jnp.zeros((num, _MEMORY, dim), x0.dtype)
    return _State(
        x=x0, f=f0, g=g0, s=zeros, y=zeros, rho=jnp.zeros((num, _MEMORY), x0.dtype),
        pairs=jnp.zeros(num, jnp.int32), step=jnp.ones(num, x0.dtype),
        active=jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0), axis=-1),
        evaluations=jnp.ones(num, jnp.int32), iteration=jnp.asarray(0))


def _lbfgs_round(value_and_grad, state: _State, num_evals: int, grad_tol, f_rtol=1e-12,
                 min_step=1e-12) -> _State:
    """Advances every active start by up to `num_evals` L-BFGS evaluations.

    The line search is Armijo backtracking spread over iterations: each iteration
    evaluates every active start once, at its current trial step; a start whose trial
    fails stays put and halves its step for the next iteration. With thousands of starts
    in one batch this costs exactly one batched evaluation per iteration, where a nested
    line-search loop would run as long as the slowest start's search every iteration.

    Args:
      value_and_grad: maps (S, P) points to ((S,) values, (S, P) gradients).
      state: the batch, from `_init_state` or a previous round.
      num_evals: iterations in this round (fewer if every start converges).
      grad_tol: a start converges when its gradient's max-norm falls below this ...
      f_rtol: ... or an accepted step improves its objective by at most f_rtol |f| ...
      min_step: ... or its trial step shrinks below this without progress (stalled).

    Returns:
      The advanced state.
    """
    num = state.x.shape[0]
    rows = jnp.arange(num)

    def keep_going(state):
        return (state.iteration < num_evals) & jnp.any(state.active)

    def iterate(state):
        p = _direction(state, _MEMORY)
        slope = jnp.sum(p * state.g, axis=-1)
        # Not a descent direction (stale curvature): fall back to steepest descent.
        descent = slope < 0
        p = jnp.where(descent[:, None], p, -state.g)
        slope = jnp.where(descent, slope, -jnp.sum(state.g**2, axis=-1))
        # Without curvature information the gradient's scale is arbitrary: cap the move.
        scale = jnp.where(state.pairs == 0, jnp.minimum(1.0, 1.0 / jnp.max(jnp.abs(p), axis=-1)), 1.0)
        t = state.step * scale
        f_try, g_try = value_and_grad(state.x + t[:, None] * p)
        accepted = (state.active & (f_try <= state.f + 1e-4 * t * slope)
                    & jnp.all(jnp.isfinite(g_try), axis=-1))

        x_new = jnp.where(accepted[:, None], state.x + t[:, None] * p, state.x)
        f_new = jnp.where(accepted, f_try, state.f)
        g_new = jnp.where(accepted[:, None], g_try, state.g)
        s, y = x_new - state.x, g_new - state.g
        sy = jnp.sum(s * y, axis=-1)
        # Keep only pairs with positive curvature so the inverse Hessian stays positive definite.
        keep = accepted & (sy > 1e-12 * jnp.sqrt(jnp.sum(s * s, -1) * jnp.sum(y * y, -1)))
        slot = state.pairs % _MEMORY
        new_s = state.s.at[rows, slot].set(jnp.where(keep[:, None], s, state.s[rows, slot]))
        new_y = state.y.at[rows, slot].set(jnp.where(keep[:, None], y, state.y[rows, slot]))
        new_rho = state.rho.at[rows, slot].set(
            jnp.where(keep, 1.0 / jnp.where(keep, sy, 1.0), state.rho[rows, slot]))

        step = jnp.where(accepted, 1.0, 0.5 * state.step)
        converged = accepted & ((jnp.max(jnp.abs(g_new), axis=-1) < grad_tol)
                                | (state.f - f_new <= f_rtol * jnp.abs(f_new)))
        stalled = ~accepted & (step * scale < min_step)
        return _State(
            x=x_new, f=f_new, g=g_new, s=new_s, y=new_y, rho=new_rho,
            pairs=state.pairs + keep, step=step, active=state.active & ~converged & ~stalled,
            evaluations=state.evaluations + state.active, iteration=state.iteration + 1)

    return jax.lax.while_loop(keep_going, iterate, state._replace(iteration=jnp.asarray(0)))


def _bind(weights, log_n, log_d, log_loss, delta):
    return functools.partial(_value_and_grad, weights=weights, log_n=log_n, log_d=log_d,
                             log_loss=log_loss, delta=delta)


@jax.jit
def _init_batch(x0, weights, log_n, log_d, log_loss, delta):
    return _init_state(_bind(weights, log_n, log_d, log_loss, delta), x0)


@functools.partial(jax.jit, static_argnames=("num_evals",))
def _round_batch(state, weights, log_n, log_d, log_loss, delta, grad_tol, num_evals):
    return _lbfgs_round(_bind(weights, log_n, log_d, log_loss, delta), state, num_evals, grad_tol)


def _solve(x0: np.ndarray, weights: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
           log_loss: np.ndarray, config: ParametricConfig, label: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimises from every row of x0 (S, 5) with per-start run weights (S, n).

    Runs in float64 in rounds of `_ROUND` evaluations. Starts converge at very different
    speeds (on Chinchilla half the grid is done after ~100 evaluations, a few starts on
    flat plateaus use the whole budget), and a batched loop costs as much as its slowest
    member, so between rounds the still-active starts are gathered into a smaller batch
    (power-of-two sizes, so only a handful of shapes are ever compiled).

    Returns:
      (x, f, evaluations) per start; diverged starts get f = +inf.
    """
    num = len(x0)
    x_out, f_out = np.array(x0, dtype=np.float64), np.full(num, np.inf)
    evals_out = np.zeros(num, dtype=np.int64)
    # Shapes are padded to a few sizes so that fits of different data sets (bootstrap,
    # extrapolation, BC vs PAC) reuse compiled code: runs to a power of two (padding runs
    # get weight 0), starts to a multiple of 256 (padding starts are never written back).
    runs = max(64, 1 << int(np.ceil(np.log2(len(log_n)))))
    pad_runs = runs - len(log_n)
    log_n, log_d, log_loss = (np.concatenate([v, np.full(pad_runs, v[0])]) for v in (log_n, log_d, log_loss))
    weights = np.pad(np.asarray(weights, np.float64), ((0, 0), (0, pad_runs)))
    size = -(-num // 256) * 256
    lanes = np.concatenate([np.arange(num), np.zeros(size - num, dtype=np.int64)])  # start of each lane
    real = np.arange(size) < num  # False for padding lanes
    with jax.enable_x64(True):
        data = (jnp.asarray(log_n, jnp.float64), jnp.asarray(log_d, jnp.float64),
                jnp.asarray(log_loss, jnp.float64), jnp.float64(config.delta))
        w = jnp.asarray(weights[lanes], jnp.float64)
        state = _init_batch(jnp.asarray(x0[lanes], jnp.float64), w, *data)
        state = state._replace(active=state.active & jnp.asarray(real))
        done, began, last_line = 0, time.perf_counter(), time.perf_counter()
        while True:
            budget = min(_ROUND, config.max_evals - done)
            state = _round_batch(state, w, *data, jnp.float64(config.grad_tol), num_evals=budget)
            done += budget
            x, f = np.asarray(state.x), np.asarray(state.f)
            evals, active = np.asarray(state.evaluations), np.asarray(state.active)
            x_out[lanes[real]], f_out[lanes[real]] = x[real], f[real]
            evals_out[lanes[real]] = evals[real]
            live = np.flatnonzero(active & real)
            if label and time.perf_counter() - last_line >= PROGRESS_SECONDS:
                last_line = time.perf_counter()
                log.info("%s: %d of %d starts settled after %d of at most %d evaluations (%.0f s)", label,
                         num - len(live), num, done, config.max_evals, last_line - began)
            if len(live) == 0 or done >= config.max_evals:
                break
            size = max(256, 1 << int(np.ceil(np.log2(len(live)))))
            if size <= len(lanes) // 2:
                # Pad with copies of a live lane marked inactive: they cost compute but no
                # compile, and are never written back.
                pick = np.concatenate([live, np.full(size - len(live), live[0])])
                real = np.arange(size) < len(live)
                state = jax.tree_util.tree_map(lambda v: v[pick] if v.ndim else v, state)
                state = state._replace(active=state.active & jnp.asarray(real))
                w = w[pick]
                lanes = lanes[pick]
    f_out = np.where(np.all(np.isfinite(x_out), axis=1) & np.isfinite(f_out), f_out, np.inf)
    return x_out, f_out, evals_out


def _distinct_best(x: np.ndarray, f: np.ndarray, count: int) -> np.ndarray:
    """The `count` best solutions that differ from each other (in rounded parameters)."""
    order = np.argsort(f)
    chosen: list[np.ndarray] = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(x[i] - c)) > 1e-3 for c in chosen):
            chosen.append(x[i])
        if len(chosen) == count:
            break
    return np.asarray(chosen)


def _to_params(x: np.ndarray) -> np.ndarray:
    """(.., 5) solver vectors (a, b, e, alpha, beta) -> (E, A, B, alpha, beta)."""
    return np.stack([np.exp(x[..., 2]), np.exp(x[..., 0]), np.exp(x[..., 1]), x[..., 3], x[..., 4]], axis=-1)


def check_points(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> None:
    """Raises ValueError unless the runs can be fitted (5 free parameters)."""
    if not (len(n) == len(d) == len(loss)):
        raise ValueError(f"N, D and loss have different lengths: {len(n)}, {len(d)}, {len(loss)}")
    if len(n) < 6:
        raise ValueError(f"parametric fit needs at least 6 runs for 5 parameters, got {len(n)}")
    for name, values in (("N", n), ("D", d), ("loss", loss)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            raise ValueError(f"parametric fit: {name} must be finite and > 0; bad at rows {np.flatnonzero(bad)[:10].tolist()}")
    if len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
        raise ValueError("parametric fit needs at least 2 distinct N and 2 distinct D values")


def fit_parametric(n: np.ndarray, d: np.ndarray, loss: np.ndarray,
                                      config: ParametricConfig = ParametricConfig(), k: float = 6.0) -> ParametricFit:
    """Fits L(N, D) = E + A / N^alpha + B / D^beta (Approach 3) with bootstrap CIs.

    Args:
        n: parameters per run.
        d: examples (or tokens) seen per run.
        loss: final loss per run (lower is better, > 0).
        config: grid, Huber delta, bootstrap settings.
        k: FLOPs per parameter per example, kept for `ParametricFit.allocate`.

    Returns:
        The best fit over the whole grid of starts, with bootstrap intervals.
    """
    start = time.perf_counter()
    n, d, loss = (np.asarray(v, dtype=np.float64) for v in (n, d, loss))
    check_points(n, d, loss)
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)

    grid = config.init_grid()
    x, f, evaluations = _solve(grid, np.ones((len(grid), len(n))), log_n, log_d, log_loss, config,
                               label="L(N, D) fit")
    if not np.isfinite(f).any():
        raise ValueError("parametric fit: every start diverged; check the data for extreme values")
    best = int(np.argmin(f))
    point = _to_params(x[best])

    samples = None
    ci: dict[str, tuple[float, float]] = {}
    if config.n_bootstrap > 0:
        starts = _distinct_best(x, f, config.bootstrap_starts)
        rng = np.random.default_rng(config.seed)
        # Multiplicity of each run in each resample: same law as drawing len(n) with replacement.
        counts = rng.multinomial(len(n), np.full(len(n), 1.0 / len(n)), size=config.n_bootstrap)
        s = len(starts)
        log.info("L(N, D) bootstrap: %d refits x %d starts on %d runs", config.n_bootstrap, s, len(n))
        xb, fb, _ = _solve(np.tile(starts, (config.n_bootstrap, 1)), np.repeat(counts, s, axis=0),
                           log_n, log_d, log_loss, config, label="L(N, D) bootstrap")
        xb, fb = xb.reshape(config.n_bootstrap, s, 5), fb.reshape(config.n_bootstrap, s)
        pick = np.argmin(fb, axis=1)
        samples = _to_params(xb[np.arange(config.n_bootstrap), pick])
        samples = samples[np.all(np.isfinite(samples), axis=1)]
        ci = bootstrap_intervals(samples, config.ci)

    return ParametricFit(
            E=float(point[0]), A=float(point[1]), B=float(point[2]), alpha=float(point[3]),
            beta=float(point[4]), objective=float(f[best]), n_points=len(n), n_starts=len(grid), k=k,
            ci=ci, ci_level=config.ci, n_bootstrap=0 if samples is None else len(samples),
            bootstrap=samples, seconds=time.perf_counter() - start)


def bootstrap_intervals(samples: np.ndarray, level: float) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the parameters and of a, b, G from (n, 5) refits."""
    laws = ParametricLaw(*samples.T)
    with np.errstate(all="ignore"):
        derived = {"a": laws.a, "b": laws.b, "G": laws.G}
    columns = dict(zip(PARAM_NAMES, samples.T)) | derived
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for name, values in columns.items():
        values = values[np.isfinite(values)]
        if len(values):
            lo, hi = np.percentile(values, q)
            out[name] = (float(lo), float(hi))
    return out
