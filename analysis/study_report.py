"""The one-page report of a scaling study: dataset, grid, fitted laws with CIs, PAC vs
BC, figures, and the machine and package versions it ran on (Markdown, figures linked
relative to the report so the folder can be moved or published as is).

Reads only files: the grid's index.csv, cells' config.json, the dataset's task specs
(plain JSON + npz) and fits.json. Imports nothing from harness/ or launch/.
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import platform
import time

import numpy as np
import pandas as pd

from analysis import report, returns
from analysis.law import read_laws
from models.helpers import write_atomic

REPORT_FILE = "report.md"
PACKAGES = ("jax", "dm-haiku", "optax", "orbax-checkpoint", "numpy", "scipy", "pandas", "matplotlib", "mujoco",
            "dm-control")
FIGURES = (("isoflop", "IsoFLOP profiles: final held-out loss vs parameters per budget, fitted parabolas, optima"),
           ("allocation", "Compute-optimal parameters and data vs compute (three approaches, 95% bands)"),
           ("envelope", "Loss vs compute for every run and the minimum envelope"),
           ("contours", "Fitted L(N, D) contours with the efficient frontier"),
           ("returns", "Normalized return vs compute, BC (alpha = 1) vs PAC"))


def _versions() -> str:
    parts = []
    for name in PACKAGES:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(parts)


def _machine() -> str:
    try:
        import jax

        device = jax.devices()[0]
        accel = f"{device.platform} ({getattr(device, 'device_kind', '')}) x{jax.device_count()}"
    except Exception:  # the report must not fail for want of a backend
        accel = "unknown"
    return f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, JAX on {accel}"


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3g}") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, (float, np.floating)) and np.isfinite(v) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dataset_summary(dataset_dir: str) -> pd.DataFrame | None:
    """Per task: dims, episodes, transitions, random reference / median episode / expert reference return."""
    rows = []
    for spec_path in sorted(glob.glob(os.path.join(dataset_dir, "*.json"))):
        if os.path.basename(spec_path).startswith("."):
            continue
        with open(spec_path) as f:
            spec = json.load(f)
        if spec.get("format") != "pac-offline":
            continue
        npz = spec_path[:-5] + ".npz"
        median = np.nan
        if os.path.exists(npz):
            with np.load(npz) as arrays:
                median = float(np.median(arrays["episode_returns"]))
        rows.append({"task": spec["task"], "obs": spec["observation_dim"], "act": spec["action_dim"],
                     "episodes": spec["num_episodes"], "transitions": spec["num_transitions"],
                     "random return": spec["random_return"], "median return": median,
                     "expert return": spec.get("expert_return", np.nan)})
    return pd.DataFrame(rows) if rows else None


def pac_vs_bc(index: pd.DataFrame) -> pd.DataFrame | None:
    """Per budget, the best (over model sizes) held-out BC loss and normalized return of
    BC (alpha = 1) and of PAC (alpha < 1)."""
    done = index[index["status"] == "done"].copy()
    if done.empty or "alpha" not in done:
        return None
    done["method"] = np.where(done["alpha"] >= 1.0, "BC", "PAC")
    if done["method"].nunique() < 2:
        return None
    rows = []
    for budget, group in done.groupby("budget_flops"):
        row = {"budget (FLOPs)": f"{budget:.2g}"}
        for method, g in group.groupby("method"):
            if "valid_bc_loss" in g:
                row[f"{method} best valid BC loss"] = float(g["valid_bc_loss"].min())
            if "normalized_return" in g:
                row[f"{method} best norm. return"] = float(g["normalized_return"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def _return_scaling_section(index: pd.DataFrame) -> list[str]:
    """The paper's return scaling: per budget, BC and PAC at their lowest-loss size."""
    table = returns.return_scaling(index)
    if table.empty:
        return []
    shown = pd.DataFrame({
        "budget (FLOPs)": [f"{b:.2g}" for b in table["budget"]], "method": table["method"],
        "lowest-loss size": [f"{p} ({n:,})" for p, n in zip(table["preset"], table["params"])],
        "valid BC loss": [f"{v:.3f}" for v in table["loss"]],
        "normalized return [95% CI over seeds]": [
            "n/a" if not np.isfinite(r) else f"{r:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (1 seed)")
            for r, ci in zip(table["return"], table["return_ci95"])],
        "episodes' 95% CI half-width": ["n/a" if e is None or not np.isfinite(e) else f"+-{e:.3f}"
                                        for e in table["episode_ci95"]],
        "seeds": table["seeds"]})
    lines = ["## Return scaling", "",
             "Normalized return (0 = random policy, 1 = the dataset's expert) of the model size with the lowest "
             "held-out loss at each budget, BC and PAC; intervals are 95% bootstrap intervals over seeds, and "
             "the episodes' half-width is the mean over its runs of each run's 95% interval over its "
             "evaluation episodes (the evaluation's own noise).", ""]
    if int(table["seeds"].max()) < 2:
        lines += ["One seed per cell, so no interval over seeds: list more seeds in the grid spec (e.g. "
                  "`seeds=(0, 1, 2)`) for one. Each return is the mean over the evaluation episodes of all tasks.", ""]
    return lines + [_table(shown), ""]


def _fit_rows(fits: dict) -> pd.DataFrame:
    rows = []
    groups = {"all runs": fits}
    groups.update({name.upper(): g for name, g in (fits.get("groups") or {}).items()})

    def fmt(law, name):
        if law is None or law.error is not None:
            return "n/a"
        value = getattr(law, name) if name in ("a", "b") else float(getattr(law.loss, name))
        if not np.isfinite(value):
            return "n/a"
        ci = law.intervals.get(name)
        return f"{value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci and len(ci) == 2 else "")

    def status(law):
        return (law.verdict if law is not None else None) or "-"

    for name, g in groups.items():
        laws = read_laws(g, ("approach2", "approach3"))
        a2, a3 = laws.get("approach2"), laws.get("approach3")
        rows.append({"runs": name,
                     "isoFLOP status": status(a2), "N_opt ~ C^a (isoFLOP)": fmt(a2, "a"),
                     "L(N,D) status": status(a3), "N_opt ~ C^a (L(N,D))": fmt(a3, "a"),
                     "E": fmt(a3, "E"), "A": fmt(a3, "A"), "alpha_N": fmt(a3, "alpha"), "B": fmt(a3, "B"),
                     "beta_D": fmt(a3, "beta")})
    return pd.DataFrame(rows)


def _caveats(fits: dict) -> list[str]:
    """One visible warning per law that is not a law (analysis.fit_status), first."""
    lines = []
    groups = {"all runs": fits} | {name.upper(): g for name, g in (fits.get("groups") or {}).items()}
    for group, g in groups.items():
        laws = read_laws(g)
        for key, label in (("approach1", "envelope (approach 1)"), ("approach2", "isoFLOP (approach 2)"),
                           ("approach3", "L(N, D) (approach 3)")):
            law = laws.get(key)
            status = law.verdict if law is not None else None
            if status in ("degenerate", "failed"):
                why = "; ".join(law.reasons or [law.error or ""])
                lines.append(f"> **{status.upper()}: {label}, {group}.** {why}. Its numbers below are not a "
                             f"scaling law, and the figures do not draw it.")
                lines.append(">")
    return (lines[:-1] + [""]) if lines else []


def write_report(results_dir: str, fits: dict, figures_dir: str | None = None) -> str:
    """Writes RESULTS_DIR/report.md and returns its path."""
    figures_dir = figures_dir or results_dir
    index_path = os.path.join(results_dir, "index.csv")
    index = pd.read_csv(index_path) if os.path.exists(index_path) else None
    name = os.path.basename(os.path.abspath(results_dir))
    out = [f"# Scaling study: {name}", "",
           f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {_machine()}.", "",
           f"Versions: {_versions()}.", ""]

    dataset = None
    if index is not None:
        for cell in index["cell"]:
            cfg = os.path.join(results_dir, str(cell), "config.json")
            if os.path.exists(cfg):
                with open(cfg) as f:
                    dataset = json.load(f)["train"]["dataset"]
                break
    if dataset:
        summary = dataset_summary(dataset)
        if summary is not None:
            out += ["## Dataset", "", f"`{dataset}`: recorded while SAC learned each task (random -> expert).", "",
                    _table(summary, "{:.1f}"), ""]

    if index is not None:
        counts = index["status"].value_counts().to_dict()
        out += ["## Grid", "",
                f"{len(index)} cells: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ". "
                f"Presets: {', '.join(map(str, dict.fromkeys(index['preset'])))}. "
                f"Budgets: {', '.join(f'{b:.2g}' for b in sorted(index['budget_flops'].unique()))} FLOPs. "
                f"Alphas: {', '.join(f'{a:g}' for a in sorted(index['alpha'].unique()))} (1 = BC).", ""]
        if "wall_seconds" in index:
            out += [f"Total training wall time of the cells: {index['wall_seconds'].fillna(0).sum() / 60:.1f} min.", ""]

    out += ["## Fitted scaling laws", "",
            f"Metric: held-out `{fits.get('source', {}).get('metric', 'bc_loss')}`; N = parameters, "
            f"D = {fits.get('source', {}).get('data_unit', 'examples')}; 95% bootstrap intervals in brackets.", ""]
    out += _caveats(fits)
    out += [_table(_fit_rows(fits)), ""]
    text = report.format_table(fits)
    out += ["```", text.rstrip(), "```", ""]

    if index is not None:
        table = pac_vs_bc(index)
        if table is not None:
            out += ["## PAC vs BC", "",
                    "Best over model sizes at each budget (lower loss / higher return is better).", "",
                    _table(table), ""]

    if index is not None:
        out += _return_scaling_section(index)

    shown = [(f, caption) for f, caption in FIGURES if os.path.exists(os.path.join(figures_dir, f + ".png"))]
    if shown:
        out += ["## Figures", ""]
        for figure, caption in shown:
            rel = os.path.relpath(os.path.join(figures_dir, figure + ".png"), results_dir)
            out += [f"![{caption}]({rel})", "", f"*{caption}.*", ""]
    path = os.path.join(results_dir, REPORT_FILE)
    write_atomic(path, "\n".join(out))
    return path
