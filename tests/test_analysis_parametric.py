"""Approach 3: the batched L-BFGS fit recovers known laws; allocation is consistent."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import parametric

TRUE = {"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.34, "beta": 0.29}
# A coarse grid of 32 starts keeps these tests fast; the full 4,500-start grid is
# exercised on the Chinchilla data (test_analysis_chinchilla.py).
COARSE = parametric.ParametricConfig(alpha_grid=(0.5, 1.0), beta_grid=(0.5, 1.0), e_grid=(0.0, 0.5),
                                     a_grid=(5.0, 15.0), b_grid=(5.0, 15.0))


def _synthetic(noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 1e10, 10), 8)
    d = np.tile(np.geomspace(1e9, 1e12, 8), 10)
    loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
    return n, d, loss * np.exp(noise * rng.standard_normal(len(n)))


def test_fused_gradient_matches_autodiff():
    n, d, loss = _synthetic()
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = jnp.asarray(np.column_stack([rng.uniform(0, 10, 4), rng.uniform(0, 10, 4), rng.uniform(-1, 1, 4),
                                         rng.uniform(0.1, 1, 4), rng.uniform(0.1, 1, 4)]))
        w = jnp.asarray(rng.integers(0, 3, (4, len(n))).astype(float))
        args = (jnp.log(n), jnp.log(d), jnp.log(loss))
        value, grad = parametric._value_and_grad(x, w, *args, 1e-3)
        reference = jax.jit(jax.vmap(jax.value_and_grad(parametric._objective), in_axes=(0, None, None, None, 0, None)))
        ref_v, ref_g = reference(x, *args, w, 1e-3)
    np.testing.assert_allclose(value, ref_v, rtol=1e-10)
    np.testing.assert_allclose(grad, ref_g, rtol=1e-8, atol=1e-14)


def test_recovers_known_parameters_with_ci():
    n, d, loss = _synthetic()
    fit = parametric.fit_parametric(n, d, loss, dataclasses.replace(COARSE, n_bootstrap=40))
    assert fit.n_starts == 32
    assert fit.E == pytest.approx(TRUE["E"], rel=0.03)
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.03)
    assert fit.beta == pytest.approx(TRUE["beta"], abs=0.03)
    assert fit.A == pytest.approx(TRUE["A"], rel=0.5)
    assert fit.B == pytest.approx(TRUE["B"], rel=0.5)
    assert fit.n_bootstrap == 40
    for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        lo, hi = fit.ci[name]
        assert lo <= hi
    assert fit.ci["alpha"][0] - 0.02 <= TRUE["alpha"] <= fit.ci["alpha"][1] + 0.02
    # 64-bit mode stays inside the analysis.
    assert jnp.ones(1).dtype == jnp.float32


def test_noiseless_fit_is_exact_and_allocation_closed_form():
    n, d, loss = _synthetic(noise=0.0)
    fit = parametric.fit_parametric(n, d, loss, dataclasses.replace(COARSE, n_bootstrap=0), k=6.0)
    for name, value in TRUE.items():
        assert getattr(fit, name) == pytest.approx(value, rel=2e-3), name
    c = np.array([1e20, 1e22])
    n_opt, d_opt = fit.allocate(c)
    np.testing.assert_allclose(6.0 * n_opt * d_opt, c, rtol=1e-10)
    assert fit.a + fit.b == pytest.approx(1.0)
    # N_opt minimises the predicted loss along the isoFLOP line.
    grid = np.geomspace(n_opt[0] / 3, n_opt[0] * 3, 2001)
    best = grid[np.argmin(fit.predict(grid, c[0] / (6.0 * grid)))]
    assert best == pytest.approx(n_opt[0], rel=5e-3)
    np.testing.assert_allclose(fit.tokens_per_parameter(c), d_opt / n_opt)


@pytest.mark.parametrize("bad, message", [
    (dict(n=np.array([1e8, 2e8, 3e8])), "at least 6 runs"),
    (dict(loss=-1.0), "loss must be finite and > 0"),
    (dict(d=np.nan), "D must be finite and > 0"),
])
def test_bad_input_is_one_line_value_error(bad, message):
    n, d, loss = _synthetic()
    args = {"n": n, "d": d, "loss": loss}
    for key, value in bad.items():
        args[key] = value if isinstance(value, np.ndarray) else np.where(np.arange(len(n)) == 3, value, args[key])
    if "n" in bad:
        args = {k: v[:3] for k, v in args.items()}
    with pytest.raises(ValueError, match=message) as err:
        parametric.fit_parametric(args["n"], args["d"], args["loss"], dataclasses.replace(COARSE, n_bootstrap=0))
    assert "\n" not in str(err.value)


def test_config_grid_is_the_reference_grid():
    grid = parametric.ParametricConfig().init_grid()
    assert grid.shape == (4500, 5)
    assert set(grid[:, 0]) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}
    assert set(grid[:, 3]) == {0.0, 0.5, 1.0, 1.5, 2.0}
    assert dataclasses.is_dataclass(parametric.ParametricFit)


def test_one_law_object_serves_point_estimates_and_bootstrap_batches():
    """ParametricLaw evaluates one law or a batch of them (the bootstrap band) the same way."""
    from analysis.parametric import ParametricLaw

    samples = np.array([[1.7, 400.0, 410.0, 0.34, 0.28], [1.6, 380.0, 500.0, 0.30, 0.30], [1.8, 420.0, 300.0, 0.36, 0.25]])
    batch = ParametricLaw(*samples.T, k=6.0)
    c = np.geomspace(1e18, 1e22, 5)
    n_batch, d_batch = batch.allocate(c)
    assert n_batch.shape == (3, 5)
    for i, row in enumerate(samples):
        one = ParametricLaw(*row, k=6.0)
        n_one, d_one = one.allocate(c)
        np.testing.assert_allclose(n_batch[i], n_one, rtol=1e-12)
        np.testing.assert_allclose(6.0 * n_one * d_one, c, rtol=1e-9)  # C = k N D on the frontier
        np.testing.assert_allclose(batch.predict(n_one, d_one)[i], one.predict(n_one, d_one), rtol=1e-12)
        # The frontier minimizes the predicted loss at fixed C.
        for scale in (0.8, 1.25):
            assert np.all(one.predict(n_one * scale, d_one / scale) >= one.predict(n_one, d_one))
    assert ParametricLaw.from_dict({"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28, "k": 6.0}) == \
        ParametricLaw(1.7, 400.0, 410.0, 0.34, 0.28, 6.0)
    # No allocation where an exponent is <= 0: NaN, not a number that looks like a result.
    assert np.all(np.isnan(ParametricLaw(1.0, 1.0, 1.0, -0.1, 0.3).allocate(c)[0]))


def test_allocation_uses_the_exact_flops_per_parameter_of_each_size():
    """Where k = C / (N D) differs between model sizes, the frontier holds C = k(N) N D
    exactly and still minimizes the predicted loss along each iso-FLOP line."""
    import pandas as pd

    from analysis.load import FlopsPerParameter, measure_k
    from analysis.parametric import ParametricLaw

    runs = pd.DataFrame({"N": [1e5, 1e5, 1e6, 1e7], "D": [1e6, 2e6, 1e6, 1e6]})
    runs["C"] = [110.0 * 1e11, 110.0 * 2e11, 115.0 * 1e12, 120.0 * 1e13]
    k = measure_k(runs)
    assert k(1e5) == pytest.approx(110.0) and k(1e7) == pytest.approx(120.0) and k(3e8) == pytest.approx(120.0)
    assert isinstance(k, FlopsPerParameter) and k.median == pytest.approx(115.0)
    law = ParametricLaw(1.7, 400.0, 410.0, 0.34, 0.28, k=k)
    c = np.geomspace(1e13, 1e17, 5)
    n_opt, d_opt = law.allocate(c)
    np.testing.assert_allclose(k(n_opt) * n_opt * d_opt, c, rtol=1e-9)
    for scale in (0.7, 1.4):
        n = n_opt * scale
        assert np.all(law.predict(n, law.examples(c, n)) >= law.predict(n_opt, d_opt) - 1e-6)
