"""Generate tests/data/closed_reference.npz: reference outputs of the closed-form Gram
aggregators (IMTL-G, Aligned-MTL, ConFIG, M-ConFIG) on fixed random Jacobians.

Run with the reference environment (torch, torchjd 0.18, conflictfree 0.1.8):

    /tmp/refvenv/bin/python tests/data/make_closed_reference.py

Everything runs in float64 with the references' default settings (torchjd `IMTLG()`,
`AlignedMTL()` with its scale modes and a preference vector, conflictfree `ConFIG_update`
(least squares) and `ConFIG_update_double` (two gradients), and `PseudoMomentumOperator`
given every task's gradient at every step). DCGD has no package; its tests use numpy.

Keys: `J_{i}` the (K, P) Jacobian of case i and `kind_{i}` its kind ("random" or a
degenerate kind); `{method}_{i}` the reference outputs. M-ConFIG: `mJ_{i}` (T, K, P)
gradient sequences, `mout_{i}` (T, P) outputs, `mb1_{i}`, `mb2_{i}` the decays.
"""

import pathlib

import numpy as np
import torch
from conflictfree.grad_operator import ConFIG_update, ConFIG_update_double
from conflictfree.momentum_operator import PseudoMomentumOperator
from torchjd.aggregation import IMTLG, AlignedMTL

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20240611)


def random_case(k, p):
    return rng.normal(size=(k, p)) * rng.uniform(0.1, 10.0, size=(k, 1))


def degenerate_cases():
    base = rng.normal(size=(4, 12))
    zero_row = base.copy()
    zero_row[1] = 0
    parallel = base[:3].copy()
    parallel[2] = 2.5 * parallel[0]
    opposite2 = np.stack([base[0], -0.5 * base[0]])
    opposite3 = np.stack([base[0], base[1], -2.0 * base[0]])
    wide = rng.normal(size=(6, 4))  # more tasks than parameters: rank 4
    duplicate = np.stack([base[0], base[0], base[1]])
    return [
        ("zero_row", zero_row),
        ("parallel", parallel),
        ("opposite2", opposite2),
        ("opposite3", opposite3),
        ("wide", wide),
        ("duplicate", duplicate),
        ("all_zero", np.zeros((3, 7))),
        ("single", base[:1]),
    ]


def main():
    cases = [("random", random_case(k, int(rng.integers(5, 31))))
             for k in (1, 2, 2, 3, 3, 4, 5, 6, 7, 8) for _ in range(2)]
    cases += degenerate_cases()
    out = {}
    for i, (kind, jac) in enumerate(cases):
        j = torch.tensor(jac)
        k = jac.shape[0]
        out[f"J_{i}"] = jac
        out[f"kind_{i}"] = np.array(kind)
        out[f"imtl_g_{i}"] = IMTLG()(j).numpy()
        out[f"aligned_mtl_{i}"] = AlignedMTL()(j).numpy()
        out[f"aligned_mtl_median_{i}"] = AlignedMTL(scale_mode="median")(j).numpy()
        out[f"aligned_mtl_rmse_{i}"] = AlignedMTL(scale_mode="rmse")(j).numpy()
        pref = np.arange(1.0, k + 1)
        out[f"aligned_mtl_pref_{i}"] = AlignedMTL(pref_vector=torch.tensor(pref))(j).numpy()
        out[f"config_{i}"] = ConFIG_update(j).numpy()
        if k == 2:
            out[f"config_double_{i}"] = ConFIG_update_double(j[0], j[1]).numpy()
    out["num_cases"] = np.array(len(cases))

    # (steps, K, P, b1, b2); the settings are among those the tests run (M_SETTINGS)
    mcases = [(3, 2, 10, 0.9, 0.999), (3, 3, 8, 0.0, 0.99), (3, 3, 6, 0.9, 0.999),
              (3, 1, 4, 0.0, 0.99)]
    for i, (steps, k, p, b1, b2) in enumerate(mcases):
        seq = rng.normal(size=(steps, k, p)) + rng.normal(size=(1, k, p))
        op = PseudoMomentumOperator(num_vectors=k, beta_1=b1, beta_2=b2)
        outs = [op.calculate_gradient(list(range(k)), [torch.tensor(r) for r in jac]).numpy()
                for jac in seq]
        out[f"mJ_{i}"], out[f"mout_{i}"] = seq, np.stack(outs)
        out[f"mb1_{i}"], out[f"mb2_{i}"] = np.array(b1), np.array(b2)
    out["num_mcases"] = np.array(len(mcases))

    path = pathlib.Path(__file__).with_name("closed_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({len(cases)} cases, {len(mcases)} momentum sequences)")


if __name__ == "__main__":
    main()
