"""Generate tests/data/qp_reference.npz: torchjd's MGDA, UPGrad, DualProj, CAGrad and NashMTL
on fixed random Jacobians, for tests/test_qp_methods.py (CI has no torch).

Run with the reference environment (torch, torchjd 0.18 with its quadprog, cvxpy, clarabel
and ecos extras):

    /tmp/refvenv/bin/python tests/data/make_qp_reference.py

Reference settings, chosen so that the references compute the same mathematical object as
pinnx (to their own solver accuracy):

- MGDA: torchjd's MGDA is Frank-Wolfe (Sener & Koltun, Alg. 2), which converges slowly; it is
  run with epsilon=1e-12, max_iters=20000 and stored as `mgda_fw`. The exact minimum-norm
  weights are also stored as `mgda`, from quadprog (through qpsolvers, as torchjd's own
  projector calls it) on G + 1e-13 tr(G) I (quadprog needs a positive-definite matrix).
- UPGrad, DualProj: torchjd with QuadprogProjector(norm_eps=0, reg_eps=0) (pinnx adds no
  ridge); on singular G, where quadprog needs one, reg_eps=1e-12 on the trace-normalised G.
- CAGrad: torchjd's CAGrad (norm_eps=1e-4, pinnx's default) with Clarabel's tolerances
  tightened to 1e-12 (torchjd calls `solve(cp.CLARABEL)` with the defaults, ~1e-8).
- NashMTL: torchjd with max_norm=0 (no clipping), optim_niter=500, its stopping test
  tightened from 1e-3 to 1e-11 and ECOS's tolerances to 1e-12; only on Jacobians where the
  bargaining solution exists (0 not in the convex hull of the unit rows) and K > 1 (the
  cvxpy problem does not build for K = 1), and only where its result satisfies the
  bargaining condition to 1e-6 (its sequence of convex programs can stop elsewhere: it does
  on one Jacobian here, which the script reports); NaN elsewhere.
"""

import pathlib
import warnings

import cvxpy as cp
import numpy as np
import torch
from qpsolvers import solve_qp
from torchjd._linalg import QuadprogProjector
from torchjd.aggregation import MGDA, CAGrad, DualProj, NashMTL, UPGrad, _nash_mtl

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("qp_reference.npz")

_solve = cp.Problem.solve


def _tight_solve(self, *args, **kwargs):
    solver = kwargs.get("solver", args[0] if args else None)
    if solver == cp.CLARABEL:
        kwargs.update(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10,
                      max_iter=500)
    elif solver == cp.ECOS:
        kwargs.update(abstol=1e-12, reltol=1e-12, feastol=1e-12, max_iters=500)
    return _solve(self, *args, **kwargs)


def _tight_stop(self, gtg, alpha_t):
    value = self.alpha_param.value
    return bool(value is None
                or np.linalg.norm(gtg @ alpha_t - 1 / (alpha_t + 1e-10)) < 1e-11
                or np.linalg.norm(value - self.prvs_alpha_param.value) < 1e-13)


cp.Problem.solve = _tight_solve
_nash_mtl._NashMTLWeighting._stop_criteria = _tight_stop


def jacobians():
    """(name, J) pairs: random, conflicting, and degenerate Jacobians."""
    rng = np.random.default_rng(20240611)
    out = []
    for k, p in [(1, 5), (2, 5), (2, 12), (3, 8), (3, 20), (4, 10), (5, 15), (6, 30),
                 (7, 25), (8, 30)]:
        out.append((f"random_{k}x{p}", rng.normal(size=(k, p)) * rng.uniform(0.1, 10)))
    for k, p in [(2, 6), (3, 10), (4, 16), (6, 20), (8, 24)]:
        j = rng.normal(size=(k, p))
        for i in range(1, k, 2):  # pairs in strong conflict
            j[i] = -0.8 * j[i - 1] + 0.4 * rng.normal(size=p)
        j *= rng.uniform(0.2, 5, size=(k, 1))  # unequal norms
        out.append((f"conflict_{k}x{p}", j))
    j = rng.normal(size=(8, 5))
    out.append(("rank_deficient_8x5", j))
    j = rng.normal(size=(4, 12))
    j[2] = 2.5 * j[0]
    out.append(("parallel_4x12", j))
    j = rng.normal(size=(3, 9))
    j[1] = j[0] + 1e-4 * rng.normal(size=9)
    out.append(("near_parallel_3x9", j))
    j = rng.normal(size=(4, 10))
    j[3] = 0
    out.append(("zero_row_4x10", j))
    j = rng.normal(size=(3, 10))
    j[1] = -0.5 * j[0]
    out.append(("opposite_3x10", j))
    return out


def nash_exists(j):
    """The bargaining solution exists iff 0 is not in the convex hull of the unit rows."""
    n = np.linalg.norm(j, axis=1)
    if np.any(n == 0):
        return False
    u = j / n[:, None]
    return np.linalg.norm(u.T @ min_norm_weights(u @ u.T)) > 1e-3


def bargaining_error(j, d):
    """How far d is from the bargaining solution: d = sum_k u_k / (d . u_k) exactly there
    (a_k = 1 / (d . g_k), so d = sum_k a_k g_k), relative to sqrt(K) = ||d||."""
    u = j / np.linalg.norm(j, axis=1)[:, None]
    p = u @ d
    if np.any(p <= 0):
        return np.inf
    return np.linalg.norm(d - u.T @ (1 / p)) / np.sqrt(len(j))


def min_norm_weights(gram):
    k = len(gram)
    reg = gram + 1e-13 * np.trace(gram) * np.eye(k)
    return solve_qp(reg, np.zeros(k), -np.eye(k), np.zeros(k), np.ones((1, k)), np.ones(1),
                    solver="quadprog")


def projector(gram):
    g = gram / np.trace(gram)
    singular = np.linalg.eigvalsh(g)[0] < 1e-10
    return QuadprogProjector(norm_eps=0.0, reg_eps=1e-12 if singular else 0.0)


def main():
    data = {}
    names = []
    for i, (name, j) in enumerate(jacobians()):
        names.append(name)
        t = torch.tensor(j)
        gram = j @ j.T
        data[f"J{i}"] = j
        data[f"mgda{i}"] = min_norm_weights(gram) @ j
        data[f"mgda_fw{i}"] = MGDA(epsilon=1e-12, max_iters=20000)(t).numpy()
        proj = projector(gram)
        data[f"upgrad{i}"] = UPGrad(projector=proj)(t).numpy()
        data[f"dualproj{i}"] = DualProj(projector=proj)(t).numpy()
        data[f"cagrad{i}"] = CAGrad(c=0.5)(t).numpy()
        data[f"cagrad_c2{i}"] = CAGrad(c=2.0)(t).numpy()
        data[f"nash{i}"] = np.full(j.shape[1], np.nan)
        if len(j) > 1 and nash_exists(j):  # torchjd's cvxpy problem breaks for K = 1
            d = NashMTL(n_tasks=len(j), max_norm=0.0, optim_niter=500)(t).numpy()
            error = bargaining_error(j, d)
            if error < 1e-6:
                data[f"nash{i}"] = d
            else:
                print(f"{name}: torchjd's NashMTL misses its condition (error {error:.1e}); "
                      "left out")
    data["names"] = np.array(names)
    np.savez_compressed(OUT, **data)
    print(f"wrote {len(names)} Jacobians to {OUT}")


if __name__ == "__main__":
    main()
