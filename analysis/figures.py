"""The scaling figures, drawn from a fits dict (fits.json) so they never need a refit.

Each figure is written as PNG and PDF, sized for a paper column (3.3 in) or page width
(6.8 in) with fonts that stay readable at that size:
- isoflop: final loss vs N per budget, the fitted parabolas and their optima;
- allocation: N_opt and D_opt vs C from all three approaches, with CI bands;
- envelope: loss vs C for every run (curves when the results folder is given) and the
  minimum envelope;
- contours: L(N, D) from Approach 3 over (C, N), with the efficient frontier;
- returns: normalized return vs C and N_opt vs C, BC vs PAC (when the data has them).
"""

from __future__ import annotations

import os
import warnings

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.law import ScalingLaw, read_laws  # noqa: E402

COLUMN = 3.3  # inches
PAGE = 6.8
_STYLE = {"font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 6.5,
          "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 3,
          "axes.grid": True, "grid.alpha": 0.25, "savefig.bbox": "tight"}
_APPROACH_COLORS = {"approach1": "tab:blue", "approach2": "tab:orange", "approach3": "tab:green"}
_GROUP_COLORS = {"bc": "tab:gray", "pac": "tab:red"}


def write_all(fits: dict, out_dir: str, results_dir: str | None = None) -> list[str]:
    """Draws every figure the fits support into `out_dir`; returns the files written."""
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    with plt.rc_context(_STYLE):
        for name, draw in (("isoflop", isoflop_figure), ("allocation", allocation_figure),
                           ("envelope", lambda f: envelope_figure(f, results_dir)),
                           ("contours", contour_figure), ("returns", lambda f: returns_figure(f, results_dir))):
            try:
                fig = draw(fits)
            except (ValueError, TypeError, KeyError, FloatingPointError, OverflowError) as err:
                # One figure's degenerate fit must not cost the others.
                warnings.warn(f"figure {name!r} not drawn: {err}")
                continue
            if fig is None:
                continue
            for ext in ("png", "pdf"):
                path = os.path.join(out_dir, f"{name}.{ext}")
                fig.savefig(path, dpi=200)
                written.append(path)
            plt.close(fig)
    return written


def _law(fits: dict, approach: str) -> ScalingLaw | None:
    """The approach's law in a fits dict, None where it holds none. Only laws whose
    status is 'ok' (`ScalingLaw.ok`, analysis.fit_status) are drawn as laws."""
    return read_laws(fits, (approach,)).get(approach)


def _points(fits: dict) -> dict[str, np.ndarray]:
    raw = fits.get("points", {})
    out = {}
    for key, values in raw.items():
        if key == "run":
            out[key] = np.asarray(values, dtype=str)
        else:
            out[key] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return out


def _budget_colors(budgets) -> dict[float, tuple]:
    cmap = plt.get_cmap("viridis")
    budgets = sorted(budgets)
    return {b: cmap(i / max(1, len(budgets) - 1) * 0.9) for i, b in enumerate(budgets)}


def isoflop_figure(fits: dict):
    """Loss vs N per budget with the fitted parabolas (Chinchilla Fig. 3 left)."""
    a2 = _law(fits, "approach2")
    if a2 is None or a2.error is not None:
        return None  # the profiles are data: drawn even when the law from them is degenerate
    budgets = a2.record["budgets"]
    pts = _points(fits)
    colors = _budget_colors([b["budget"] for b in budgets])
    fig, ax = plt.subplots(figsize=(COLUMN, 2.6))
    for b in budgets:
        color = colors[b["budget"]]
        sel = np.isclose(pts["budget"], b["budget"], rtol=1e-9)
        ax.scatter(pts["N"][sel], pts["loss"][sel], s=6, color=color, alpha=0.7, linewidths=0)
        grid = np.geomspace(b["n_min"] / 1.3, b["n_max"] * 1.3, 100)
        c0, c1, c2 = b["coefficients"]
        x = np.log(grid)
        ax.plot(grid, c0 + c1 * x + c2 * x * x, color=color, label=f"{b['budget']:.1e}")
        # A vertex far outside the sampled sizes (flat or concave profiles) is not drawn:
        # it would stretch the axis over many decades; the edge warning already names it.
        if b["n_min"] / 3 <= b["n_opt"] <= b["n_max"] * 3:
            ax.scatter([b["n_opt"]], [b["loss_opt"]], marker="*", s=40, color=color, edgecolors="k",
                       linewidths=0.4, zorder=5)
    ax.set_xscale("log")
    ax.set_xlim(min(b["n_min"] for b in budgets) / 1.5, max(b["n_max"] for b in budgets) * 1.5)
    ax.set_xlabel("parameters N")
    ax.set_ylabel(_loss_label(fits))
    ax.set_title("IsoFLOP profiles (stars: fitted optima)" if a2.ok else
                 "IsoFLOP profiles: no law (degenerate, see the report)")
    lo, hi = np.nanpercentile(pts["loss"][np.isfinite(pts["budget"])], [0, 97])
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.legend(title="FLOPs", ncol=2, fontsize=5.5, title_fontsize=6, loc="upper right")
    return fig


def allocation_figure(fits: dict):
    """N_opt(C) and D_opt(C) from the three approaches with CI bands (Chinchilla Fig. 3)."""
    laws = {name: law for name, law in read_laws(fits).items() if law.ok}
    if not laws:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(PAGE, 2.6))
    unit = "examples" if fits.get("source", {}).get("data_unit", "examples") == "examples" else "tokens"
    for ax, which, label in ((axes[0], "N", "parameters N_opt"), (axes[1], "D", f"{unit} D_opt")):
        exponent_name = "a" if which == "N" else "b"
        for key, law in laws.items():
            color = _APPROACH_COLORS[key]
            if key == "approach3":
                alloc = law.record["allocation"]  # the fit's own table, with its bootstrap band
                ax.plot(alloc["C"], alloc[which], color=color,
                        label=f"3: parametric, {exponent_name} = {getattr(law, exponent_name):.3f}")
                if f"{which}_lo" in alloc:
                    ax.fill_between(alloc["C"], alloc[f"{which}_lo"], alloc[f"{which}_hi"], color=color,
                                    alpha=0.15, linewidth=0)
                continue
            fit = law.n_opt if which == "N" else law.d_opt
            if key == "approach2":
                c = np.array([b["budget"] for b in law.record["budgets"]])
                y = np.array([b["n_opt" if which == "N" else "d_opt"] for b in law.record["budgets"]])
                name = "2: isoFLOP"
            else:
                c = np.array(law.record["envelope"]["C"])
                y = np.array(law.record["envelope"][which])
                name = "1: envelope"
            ax.scatter(c, y, s=8, color=color, zorder=4)
            if not np.isfinite([fit.coefficient, fit.exponent]).all():
                continue  # the power law could not be fitted (it is null in fits.json)
            grid = np.array(fit.band_x) if fit.band_x else np.geomspace(c.min() / 3, c.max() * 10, 40)
            with np.errstate(over="ignore", invalid="ignore"):
                line = fit.predict(grid)
            ax.plot(grid, line, color=color, linestyle="--", label=f"{name}, {exponent_name} = {fit.exponent:.3f}")
            if fit.band_x:
                ax.fill_between(fit.band_x, fit.band_lo, fit.band_hi, color=color, alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.set_ylabel(label)
        ax.legend(loc="upper left")
    fig.suptitle("Compute-optimal allocation (bands: 95% bootstrap CI)", fontsize=8)
    fig.tight_layout()
    return fig


def envelope_figure(fits: dict, results_dir: str | None):
    """Loss vs C of every run, and the minimum envelope."""
    a1 = _law(fits, "approach1")
    pts = _points(fits)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(COLUMN, 2.6))
    curves = _curves(fits, results_dir)
    if curves is not None:
        n_values = np.log(curves["N"].to_numpy(float))
        cmap = plt.get_cmap("viridis")
        lo, hi = n_values.min(), n_values.max()
        for run, curve in curves.groupby("run"):
            n = np.log(curve["N"].iloc[0])
            ax.plot(curve["C"], curve["loss"], color=cmap((n - lo) / max(hi - lo, 1e-9) * 0.9), alpha=0.6,
                    linewidth=0.7)
    else:
        sc = ax.scatter(pts["C"], pts["loss"], c=np.log10(pts["N"]), s=5, cmap="viridis", linewidths=0)
        fig.colorbar(sc, ax=ax, label="log10 N", pad=0.01)
    if a1 is not None and a1.error is None:  # the envelope is data, drawn whatever the law's status
        env = a1.record["envelope"]
        ax.plot(env["C"], env["loss"], "o-", color="tab:red", markersize=2.5, linewidth=1, label="envelope")
        ax.legend(loc="upper right")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel(_loss_label(fits))
    ax.set_title("Loss vs compute, minimum envelope (Approach 1)")
    lo, hi = np.nanpercentile(pts["loss"], [0, 97])
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    return fig


def _curves(fits: dict, results_dir: str | None):
    if results_dir is None:
        return None
    from analysis import load  # only when redrawing from a results folder

    src = fits.get("source", {})
    try:
        frame = load.load_results(results_dir)
        curves = load.curve_points(frame, src.get("metric", "bc_loss"), src.get("split", "valid"),
                                   src.get("param_count", "total"), src.get("data_unit", "examples"))
    except (OSError, ValueError):
        return None
    return curves if len(curves) else None


def contour_figure(fits: dict):
    """L(N, D) of Approach 3 over (C, N) with the efficient frontier (Chinchilla Fig. 4)."""
    law = _law(fits, "approach3")
    if law is None or not law.ok:
        return None
    pts = _points(fits)
    c = np.geomspace(np.nanmin(pts["C"]) / 3, np.nanmax(pts["C"]) * 10, 200)
    n = np.geomspace(np.nanmin(pts["N"]) / 5, np.nanmax(pts["N"]) * 5, 200)
    cc, nn = np.meshgrid(c, n)
    loss = law.predict(nn, law.loss.examples(cc, nn))
    fig, ax = plt.subplots(figsize=(COLUMN, 2.6))
    # The floor is the lowest predicted loss on the plot (E itself can fit to ~0 on noisy
    # grids, and a geometric scale cannot start at 0).
    low, high = float(np.nanmin(loss)), float(np.nanpercentile(loss, 90))
    levels = np.geomspace(low, high, 14) if 0 < low < high else np.linspace(low, max(high, low + 1e-9), 14)
    cs = ax.contourf(cc, nn, loss, levels=levels, cmap="viridis_r", alpha=0.85)
    ax.contour(cc, nn, loss, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(cs, ax=ax, label="predicted loss", pad=0.01, format="%.2f")
    alloc = law.record["allocation"]
    ax.plot(alloc["C"], alloc["N"], color="tab:red", linewidth=1.5, label=f"efficient frontier, a = {law.a:.3f}")
    ax.scatter(pts["C"], pts["N"], s=4, color="white", edgecolors="k", linewidths=0.3, label="runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(c[0], c[-1])
    ax.set_ylim(n[0], n[-1])
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("parameters N")
    ax.set_title("Parametric fit L(N, D), Approach 3")
    ax.legend(loc="upper left")
    return fig


def _compute_optimal_returns(results_dir: str | None):
    """The report's return table (analysis.returns.return_scaling) of a results folder, or None."""
    index_path = os.path.join(results_dir, "index.csv") if results_dir else None
    if not index_path or not os.path.isfile(index_path):
        return None
    import pandas as pd

    from analysis.returns import return_scaling

    table = return_scaling(pd.read_csv(index_path))
    return None if table.empty else table


def returns_figure(fits: dict, results_dir: str | None = None):
    """Return vs C and N_opt vs C, BC vs PAC side by side. With the results folder, the
    left panel's lines are the return of each budget's lowest-loss size (mean over seeds)
    with its 95% interval: over seeds, or over evaluation episodes with one seed."""
    ret = fits.get("returns")
    if not ret or not ret.get("points"):
        return None
    pts = {k: np.asarray(v) for k, v in ret["points"].items()}
    alpha = pts["alpha"].astype(float)
    table = _compute_optimal_returns(results_dir)
    fig, axes = plt.subplots(1, 2, figsize=(PAGE, 2.6))
    ax = axes[0]
    for name, sel, label in (("bc", np.isclose(alpha, 1.0), "BC (alpha = 1)"), ("pac", alpha < 1 - 1e-9, "PAC (alpha < 1)")):
        if not sel.any():
            continue
        c, v = pts["C"][sel].astype(float), pts["value"][sel].astype(float)
        ax.scatter(c, v, s=8, color=_GROUP_COLORS[name], alpha=0.4, linewidths=0, label=label)
        rows = table[table["method"] == name.upper()] if table is not None else None
        if rows is not None and len(rows):
            mean = rows["return"].to_numpy(float)
            low, high = [], []
            for m, seeds_ci, episodes in zip(mean, rows["return_ci95"], rows["episode_ci95"]):
                if seeds_ci is not None and not (isinstance(seeds_ci, float) and np.isnan(seeds_ci)):
                    low.append(m - seeds_ci[0]), high.append(seeds_ci[1] - m)
                else:
                    half = episodes if episodes is not None and np.isfinite(episodes) else 0.0
                    low.append(half), high.append(half)
            ax.errorbar(rows["budget"].to_numpy(float), mean, yerr=[low, high], color=_GROUP_COLORS[name],
                        linewidth=1, capsize=2)
        else:
            order = np.argsort(c)
            ax.plot(c[order], np.maximum.accumulate(v[order]), color=_GROUP_COLORS[name], linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel(f"final {ret['metric']}")
    ax.set_title("Return vs compute (lines: lowest-loss size, 95% CI)" if table is not None
                 else "Return vs compute (lines: best so far)")
    ax.legend(loc="lower right")
    ax = axes[1]
    drew = False
    for name in ("bc", "pac"):
        for source, style in ((fits.get("groups", {}).get(name, {}), "-"), (ret.get(name, {}), ":")):
            a2 = _law(source, "approach2") if source else None
            if a2 is None or not a2.ok:
                continue
            c = np.array([b["budget"] for b in a2.record["budgets"]])
            y = np.array([b["n_opt"] for b in a2.record["budgets"]])
            grid = np.geomspace(c.min() / 2, c.max() * 2, 40)
            what = "loss" if style == "-" else "1 - return"
            ax.scatter(c, y, s=8, color=_GROUP_COLORS[name], marker="o" if style == "-" else "s")
            ax.plot(grid, a2.n_opt.predict(grid), style, color=_GROUP_COLORS[name],
                    label=f"{name.upper()} on {what}: a = {a2.n_opt.exponent:.2f}")
            drew = True
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("N_opt (isoFLOP)")
    ax.set_title("Compute-optimal size, BC vs PAC")
    if drew:
        ax.legend(loc="upper left")
    else:
        # An empty log-log frame reads as a plot of nothing; say why it is empty.
        ax.text(0.5, 0.5, "no isoFLOP fit to draw:\nnone usable (failed or degenerate)\n(see the report's status lines)",
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.3")
        ax.set_xticks([]), ax.set_yticks([])
        ax.minorticks_off()
    fig.tight_layout()
    return fig


def _loss_label(fits: dict) -> str:
    src = fits.get("source", {})
    return "final loss" if src.get("kind") == "csv" else f"{src.get('split', 'valid')} {src.get('metric', 'loss')}"
