"""Generate tests/data/robust_reference.npz from torchjd 0.18 (run with /tmp/refvenv/bin/python).

Fixed random Jacobians J (K x P, K in 1..8, P in 5..30, plus degenerate ones: zero,
duplicated and opposite rows, rows of very different scales) go through torchjd's GradDrop,
GradVac, Krum, TrimmedMean and Random in float64. The random methods are fed fixed draws by
replacing torch's RNG call for the duration of one aggregation:

- GradDrop: `torch.rand` returns the saved uniforms U (drawn in (0, 1));
- Random: `torch.randn` returns the saved normal draws z;
- GradVac: `torch.randperm` returns, for each task i in turn, the saved visiting order of
  the other tasks; eps=1e-30 instead of torchjd's 1e-8 (pinnx adds no epsilon: it guards
  its divisions instead), negligible next to these norms and still 0/0-safe for zero rows.
  Three steps per Jacobian sequence, carrying torchjd's internal targets.

Keys are "<method>.<case>.<field>"; "<method>.count" is the number of cases.
"""

import contextlib
from pathlib import Path

import numpy as np
import torch
from torchjd.aggregation import GradDrop, GradVac, Krum, Random, TrimmedMean

OUT = Path(__file__).with_name("robust_reference.npz")
rng = np.random.default_rng(20240611)
data: dict[str, np.ndarray] = {}


@contextlib.contextmanager
def patched(name, fn):
    original = getattr(torch, name)
    setattr(torch, name, fn)
    try:
        yield
    finally:
        setattr(torch, name, original)


def jacobians():
    """Random and degenerate (K, P) matrices."""
    out = []
    for k in range(1, 9):
        for _ in range(2):
            out.append(rng.normal(size=(k, int(rng.integers(5, 31)))))
    j = rng.normal(size=(5, 12))
    j[1] = 0.0  # zero row
    j[3] = j[0]  # duplicate
    j[4] = -2.0 * j[2]  # opposite
    out.append(j)
    j = rng.normal(size=(4, 9)) * np.array([[1e-3], [1.0], [1e3], [1.0]])  # scales
    out.append(j)
    j = rng.normal(size=(3, 7))
    j[:, 2] = 0.0  # a coordinate where every row is zero
    j[1] = 0.5 * j[0]  # parallel
    out.append(j)
    return out


def save(method, case, **fields):
    for name, value in fields.items():
        data[f"{method}.{case}.{name}"] = np.asarray(value)


def tensor(a):
    return torch.as_tensor(np.asarray(a, np.float64))


# ---------------------------------------------------------------- GradDrop
cases = jacobians()
for c, j in enumerate(cases):
    u = rng.uniform(1e-12, 1 - 1e-12, size=j.shape[1])
    leak = rng.uniform(0, 1, size=j.shape[0]) if c % 3 == 2 else np.zeros(j.shape[0])
    with patched("rand", lambda *a, u=u, **kw: tensor(u)):
        out = GradDrop(leak=tensor(leak))(tensor(j)).numpy()
    save("graddrop", c, J=j, U=u, leak=leak, out=out)
data["graddrop.count"] = np.asarray(len(cases))

# ---------------------------------------------------------------- Random (RLW)
for c, j in enumerate(cases):
    z = rng.normal(size=j.shape[0])
    with patched("randn", lambda *a, z=z, **kw: tensor(z)):
        out = Random()(tensor(j)).numpy()
    save("random", c, J=j, z=z, out=out)
data["random.count"] = np.asarray(len(cases))

# ---------------------------------------------------------------- TrimmedMean
c = 0
for j in cases[1::2] + cases[16:]:  # one matrix per K, and the degenerate ones
    for trim in sorted({0, 1, (j.shape[0] - 1) // 2} & set(range((j.shape[0] + 1) // 2))):
        save("trimmed_mean", c, J=j, trim=trim, out=TrimmedMean(trim)(tensor(j)).numpy())
        c += 1
data["trimmed_mean.count"] = np.asarray(c)


# ---------------------------------------------------------------- Krum (torchjd: distances)
def krum_scores(j, f):
    d = np.linalg.norm(j[:, None] - j[None, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, : j.shape[0] - f - 2].sum(axis=1)


c = 0
for j in cases[1::2] + cases[16:]:  # one matrix per K, and the degenerate ones
    k = j.shape[0]
    # f <= K - 4 leaves >= 2 neighbours (with one, mutual nearest neighbours always tie)
    for f in sorted({0, k - 4}) if k >= 4 else ():
        for m in sorted({1, k - f - 2}):
            s = np.sort(krum_scores(j, f))
            if m < k and s[m] - s[m - 1] < 1e-6 * s[-1]:
                continue  # a near tie at the selection boundary: not a fair comparison
            out = Krum(n_byzantine=f, n_selected=m)(tensor(j)).numpy()
            save("krum", c, J=j, n_byzantine=f, n_selected=m, out=out)
            c += 1
data["krum.count"] = np.asarray(c)

# ---------------------------------------------------------------- GradVac
c = 0
for k in (2, 3, 4, 6, 8):
    for beta in (0.5, 0.1):
        steps = [rng.normal(size=(k, 17)) for _ in range(3)]
        if k == 4 and beta == 0.5:
            steps[1][2] = 0.0  # a zero row mid-sequence
            steps[2][3] = -steps[2][0]  # opposite rows
        agg = GradVac(beta=beta, eps=1e-30)
        orders, outs, phis = [], [], []
        for j in steps:
            order = np.stack([rng.permutation([x for x in range(k) if x != i])
                              for i in range(k)]) if k > 1 else np.zeros((1, 0), int)
            # torchjd visits others[perm[0]], others[perm[1]], ...: perm = positions
            perms = iter([[[x for x in range(k) if x != i].index(v) for v in o]
                          for i, o in enumerate(order)])
            with patched("randperm", lambda n, *a, p=perms, **kw: torch.as_tensor(next(p))):
                outs.append(agg(tensor(j)).numpy())
            orders.append(order)
            phis.append(agg.gramian_weighting._phi_t.numpy().copy())
        save("gradvac", c, J=np.stack(steps), order=np.stack(orders), beta=beta,
             out=np.stack(outs), phi=np.stack(phis))
        c += 1
data["gradvac.count"] = np.asarray(c)

np.savez_compressed(OUT, **data)
print(f"wrote {OUT} ({len(data)} arrays)")
