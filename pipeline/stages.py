"""Developmental stage boundaries from the LLC curve, as Hoogland et al. 2024 find them: a Gaussian process
fitted to the LLC against log tokens seen, and the critical points of its posterior mean.

The raw finite difference of a few-chain estimate changes sign at every wiggle; the GP smooths with a length
scale it learns, with each checkpoint's chain spread as known noise plus a learned noise floor (a few chains
understate the estimator's spread). The slope d LLC / d log t of the posterior mean comes with its 95% credible
band, from the RBF kernel's derivatives. A boundary is a point where the slope changes sign between stretches
where the band excludes zero on each side: a rise into a fall (`peak`) or a fall into a rise (`trough`). Its
interval is the stretch between them where the band contains zero.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.cli import cli
from pipeline.io import run_cli, write_table

Z95 = 1.959964
GRID = 400  # points of the smoothed curve over the trained checkpoints' log-token range
CURVE_COLUMNS = ["tokens_seen", "llc_smooth", "llc_smooth_sd", "slope", "slope_sd"]
BOUNDARY_COLUMNS = ["boundary", "kind", "tokens_seen", "lower_tokens", "upper_tokens", "llc_smooth"]


def fit_gp(x: np.ndarray, y: np.ndarray, noise_sd: np.ndarray):
    """sklearn's GP regressor with kernel C * RBF + White fitted to (x, y) by maximum marginal likelihood (fixed
    restarts: deterministic), `noise_sd`**2 as each point's known noise; the RBF's length scale is at least the
    median spacing of x, so it cannot interpolate checkpoint-to-checkpoint noise."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    spacing = max(float(np.median(np.diff(np.sort(x)))), 1e-3)
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(0.2, (spacing, 10.0)) + WhiteKernel(0.01, (1e-6, 10.0))
    gp = GaussianProcessRegressor(kernel, alpha=noise_sd ** 2 + 1e-10, n_restarts_optimizer=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a bound reached is an answer here (flat: no stages)
        return gp.fit(x[:, None], y)


def posterior(gp, at: np.ndarray) -> dict[str, np.ndarray]:
    """Posterior mean and sd at `at` of the latent curve (no noise) and of its derivative, from the fitted RBF's
    closed-form derivatives: d/dx k(x, x') and d^2/dx dx' k(x, x) = amplitude / length^2."""
    amplitude, length = gp.kernel_.k1.k1.constant_value, gp.kernel_.k1.k2.length_scale
    diff = at[:, None] - gp.X_train_[None, :, 0]
    k_star = amplitude * np.exp(-diff ** 2 / (2 * length ** 2))
    dk_star = -diff / length ** 2 * k_star
    v, dv = (np.linalg.solve(gp.L_, k.T) for k in (k_star, dk_star))
    return {"mean": k_star @ gp.alpha_, "sd": np.sqrt(np.clip(amplitude - (v ** 2).sum(0), 0, None)),
            "slope": dk_star @ gp.alpha_,
            "slope_sd": np.sqrt(np.clip(amplitude / length ** 2 - (dv ** 2).sum(0), 0, None))}


def fit_curve(log_t: np.ndarray, value: np.ndarray, noise_sd: np.ndarray, grid: np.ndarray) -> pd.DataFrame:
    """The smoothed curve and its slope on `grid` (in the units of `log_t` and `value`): the GP is fitted on
    log_t scaled to [0, 1] and the values standardised, then mapped back."""
    span, centre, scale = np.ptp(log_t), value.mean(), value.std() or 1.0
    gp = fit_gp((log_t - log_t.min()) / span, (value - centre) / scale, noise_sd / scale)
    post = posterior(gp, (grid - log_t.min()) / span)
    return pd.DataFrame({"log_t": grid, "llc_smooth": centre + scale * post["mean"],
                         "llc_smooth_sd": scale * post["sd"],
                         "slope": scale * post["slope"] / span, "slope_sd": scale * post["slope_sd"] / span})


def boundaries(curve: pd.DataFrame) -> pd.DataFrame:
    """The critical points of the smoothed curve whose slope is credibly of one sign before and of the other
    after; each with its interval (the stretch where the band contains zero) in tokens seen."""
    sign = np.where(curve.slope - Z95 * curve.slope_sd > 0, 1, np.where(curve.slope + Z95 * curve.slope_sd < 0, -1, 0))
    credible = np.flatnonzero(sign)
    rows = []
    for before, after in zip(credible[:-1], credible[1:]):
        if sign[before] == sign[after]:
            continue
        between = curve.iloc[before:after + 1]
        crossing = before + int(np.argmin(np.abs(between.slope.to_numpy())))
        log_t = curve.log_t.to_numpy()
        rows.append({"kind": "peak" if sign[before] > 0 else "trough", "tokens_seen": np.exp(log_t[crossing]),
                     "lower_tokens": np.exp(log_t[before]), "upper_tokens": np.exp(log_t[after]),
                     "llc_smooth": curve.llc_smooth.iloc[crossing]})
    table = pd.DataFrame(rows, columns=BOUNDARY_COLUMNS[1:])
    table.insert(0, "boundary", np.arange(len(table)))
    return table


def llc_stages(llc: pd.DataFrame, chains: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model's smoothed LLC curve (with its slope's band) and its stage boundaries, from its trained
    checkpoints (tokens seen > 0); the noise of each estimate is its chain spread over sqrt(chains)."""
    line = llc[llc.tokens_seen > 0].sort_values("tokens_seen")
    if len(line) < 4:  # too few checkpoints to learn a length scale: no curve, no boundaries
        return pd.DataFrame(columns=CURVE_COLUMNS), pd.DataFrame(columns=BOUNDARY_COLUMNS)
    log_t = np.log(line.tokens_seen.to_numpy(float))
    grid = np.linspace(log_t.min(), log_t.max(), GRID)
    curve = fit_curve(log_t, line.llc_mean.to_numpy(float), line.llc_std.to_numpy(float) / np.sqrt(chains), grid)
    found = boundaries(curve)
    curve.insert(0, "tokens_seen", np.exp(curve.pop("log_t")))
    return curve, found


def main():
    args, cfg = cli("Stage boundaries of one model from its LLC curve (GP-smoothed critical points).",
                    llc="LLC table (.parquet)", curve_out="smoothed curve (.parquet)", out="boundaries (.parquet)")
    curve, found = llc_stages(pd.read_parquet(args.llc), cfg.analysis.llc.chains)
    for table, path in ((curve, args.curve_out), (found, args.out)):
        table.insert(0, "model", cfg.model.name)
        write_table(table, path)


if __name__ == "__main__":
    run_cli(main)
