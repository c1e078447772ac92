"""Generate tests/data/weightings_reference.npz: reference runs of the loss weightings.

Run with the reference environment (torch, CPU):

    /tmp/refvenv/bin/python tests/data/make_weightings_reference.py

No library ships these weightings in a form that runs on raw Jacobians, so each reference
below is written from the paper (and the authors' code where named) in torch, float64,
independently of pinnx: GradNorm and the uncertainty weighting differentiate their
objectives with torch autograd and step with torch.optim; MultiAdam uses torch.optim.Adam
(one optimizer per task); the NTK traces use torch.func per-point Jacobians of a torch MLP.
Settings where the authors' code adds an epsilon that pinnx does not (ReLoBRaLo's 1e-7 in
the denominator, SoftAdapt's 1e-8, jaxpi's 1e-5 * mean) are written here with epsilon 0;
undefined estimates keep the previous weight, as documented in pinnx.

Every case stores its settings and expected outputs under keys "<method>/<case>/<name>"; the
random cases share their inputs (Jacobian paths inputs/random/J{i}, loss paths
inputs/random/L{i}; "inputs" names i), the degenerate cases (zero rows, zero / negative /
NaN losses) hold their own J / losses. K = 1 is the first random case.
"""

import pathlib

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
RNG = np.random.default_rng(20240607)
OUT: dict[str, np.ndarray] = {}
T = 12  # steps per run


def put(method: str, case: str, **arrays) -> None:
    for name, value in arrays.items():
        OUT[f"{method}/{case}/{name}"] = np.asarray(value)


def jacobians(k: int, p: int, steps: int = T) -> np.ndarray:
    """(steps, K, P) rows of different scales that drift over the steps."""
    scales = 10.0 ** RNG.uniform(-2, 2, size=k)
    base = RNG.normal(size=(k, p)) * scales[:, None]
    drift = RNG.normal(size=(steps, k, p)) * 0.3 * scales[None, :, None]
    return base[None] + np.cumsum(drift, axis=0)


def loss_paths(k: int, steps: int = T) -> np.ndarray:
    """(steps, K) positive losses that decrease at task-dependent rates, with noise."""
    start = 10.0 ** RNG.uniform(-2, 2, size=k)
    rate = RNG.uniform(0.0, 0.3, size=k)
    noise = np.exp(RNG.normal(size=(steps, k)) * 0.1)
    return start[None] * np.exp(-rate[None] * np.arange(steps)[:, None]) * noise


SIZES = [(1, 5), (2, 7), (3, 12), (5, 20), (8, 30)]
# the random cases of every method share these inputs (stored once, as inputs/J{i}, L{i})
JS = [jacobians(k, p) for k, p in SIZES]
LS = [loss_paths(k) for k, _ in SIZES]
for _i, (_J, _L) in enumerate(zip(JS, LS, strict=True)):
    put("inputs", "random", **{f"J{_i}": _J, f"L{_i}": _L})

# ------------------------------------------------------------------ LRA (Wang et al. 2021)


def lra_reference(J, main, alpha, every):
    # the raw-gradient form, pinnx.lra(weighted=False); the paper's weighted form is checked
    # against a sequential numpy reference in tests/test_weightings.py
    J = torch.tensor(J)
    k = J.shape[1]
    w = torch.ones(k)
    weights, skipped = [], 0
    for t in range(J.shape[0]):
        g = J[t]
        if t % every == 0:
            peak = g[main].abs().max()
            skip = False
            for j in range(k):
                if j == main:
                    continue
                m = g[j].abs().mean()
                if peak > 0 and m > 0:
                    w[j] = (1 - alpha) * w[j] + alpha * peak / m
                else:
                    skip = True
            skipped += skip
        weights.append(w.clone())
    return torch.stack(weights).numpy(), skipped


for i, (k, _p) in enumerate(SIZES):
    J = JS[i]
    main, alpha, every = int(RNG.integers(k)), [0.1, 0.3][i % 2], [1, 3, 10][i % 3]
    put("lra", f"random{i}", inputs=i, main=main, alpha=alpha, every=every,
        **dict(zip(("weights", "skipped"), lra_reference(J, main, alpha, every),
                   strict=True)))
J = jacobians(3, 8)
J[2, 1] = 0.0  # a zero task row at a due step
J[4, 0] = 0.0  # a zero main row at a due step
put("lra", "degenerate", J=J, main=0, alpha=0.2, every=2,
    **dict(zip(("weights", "skipped"), lra_reference(J, 0, 0.2, 2), strict=True)))

# ------------------------------------------------- gradient-norm weights (Wang et al. 2023)


def grad_norm_reference(J, alpha, every):
    J = torch.tensor(J)
    k = J.shape[1]
    w = torch.ones(k)
    weights, skipped = [], 0
    for t in range(J.shape[0]):
        g = J[t]
        if t % every == 0:
            norms = torch.linalg.norm(g, dim=1)
            total = norms.sum()
            skip = False
            for j in range(k):
                if norms[j] > 0:
                    w[j] = (1 - alpha) * w[j] + alpha * total / norms[j]
                else:
                    skip = True
            skipped += skip
        weights.append(w.clone())
    return torch.stack(weights).numpy(), skipped


for i, J in enumerate(JS):
    alpha, every = [0.1, 0.5][i % 2], [1, 4][i % 2]
    put("grad_norm_weights", f"random{i}", inputs=i, alpha=alpha, every=every,
        **dict(zip(("weights", "skipped"), grad_norm_reference(J, alpha, every),
                   strict=True)))
J = jacobians(4, 9)
J[0, 2] = 0.0
J[3, :] = 0.0  # every row zero
put("grad_norm_weights", "degenerate", J=J, alpha=0.3, every=1,
    **dict(zip(("weights", "skipped"), grad_norm_reference(J, 0.3, 1), strict=True)))

# ------------------------------------------------------ NTK weights (Wang, Yu, Perdikaris)


def ntk_weights_reference(traces, alpha, every):
    traces = torch.tensor(traces)
    w = torch.ones(traces.shape[1])
    weights, skipped = [], 0
    for t in range(traces.shape[0]):
        if t % every == 0:
            tr = traces[t]
            skip = False
            for j in range(tr.shape[0]):
                if tr[j] > 0:
                    w[j] = (1 - alpha) * w[j] + alpha * tr.sum() / tr[j]
                else:
                    skip = True
            skipped += skip
        weights.append(w.clone())
    return torch.stack(weights).numpy(), skipped


for i, (k, _) in enumerate(SIZES):
    traces = 10.0 ** RNG.uniform(-3, 3, size=(T, k))
    if i == 3:
        traces[5, 1] = 0.0
    alpha, every = [0.1, 0.4][i % 2], [1, 2, 5][i % 3]
    w, skipped = ntk_weights_reference(traces, alpha, every)
    put("ntk_weights", f"random{i}", traces=traces, alpha=alpha, every=every, weights=w,
        skipped=skipped)


def mlp(params, x):
    """tanh MLP u(x) for one point, params = [W0, b0, W1, b1, ...] (torch Linear layout)."""
    h = x
    n = len(params) // 2
    for i in range(n):
        h = params[2 * i] @ h + params[2 * i + 1]
        if i < n - 1:
            h = torch.tanh(h)
    return h[0]


def traces_reference(params, points):
    """sum_i ||d r_i / d theta||^2 per task; r_pde = u'' + u - sin(x), r_bc = u - 1."""
    def u_xx(p, x):
        f = lambda y: mlp(p, y)  # noqa: E731
        return torch.func.hessian(f)(x)[0, 0]

    def r_pde(p, x):
        return u_xx(p, x) + mlp(p, x) - torch.sin(x[0])

    def r_bc(p, x):
        return mlp(p, x) - 1.0

    out = {}
    for name, r in (("bc", r_bc), ("pde", r_pde)):
        jac = torch.func.vmap(torch.func.jacrev(r), in_dims=(None, 0))(params, points[name])
        per_point = sum((j.reshape(j.shape[0], -1) ** 2).sum(dim=1) for j in jac)
        out[name] = per_point
    return out


sizes = [1, 6, 6, 1]
params = []
for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
    params += [torch.tensor(RNG.normal(size=(n_out, n_in)) / np.sqrt(n_in)),
               torch.tensor(RNG.normal(size=n_out) * 0.1)]
points = {"pde": torch.tensor(RNG.uniform(-1, 1, size=(9, 1))),
          "bc": torch.tensor([[-1.0], [1.0]])}
per_point = traces_reference(params, points)
put("ntk_traces", "mlp", **{f"param{i}": v.numpy() for i, v in enumerate(params)},
    points_pde=points["pde"].numpy(), points_bc=points["bc"].numpy(),
    sum_pde=per_point["pde"].sum().item(), sum_bc=per_point["bc"].sum().item(),
    mean_pde=per_point["pde"].mean().item(), mean_bc=per_point["bc"].mean().item())

# -------------------------------------------------------------- GradNorm (Chen et al. 2018)


def gradnorm_reference(J, losses, alpha, lr):
    J, losses = torch.tensor(J), torch.tensor(losses)
    k = J.shape[1]
    w = torch.ones(k)
    opt_w = torch.nn.Parameter(w.clone())
    opt = torch.optim.SGD([opt_w], lr=lr)
    initial = None
    weights, skipped = [], 0
    for t in range(J.shape[0]):
        g, L = J[t], losses[t]
        if not bool(torch.all(torch.isfinite(L) & (L > 0))):
            skipped += 1
            weights.append(opt_w.detach().clone())
            continue
        if initial is None:
            initial = L.clone()
        opt.zero_grad()
        G = opt_w * torch.linalg.norm(g, dim=1)  # ||grad of w_k L_k|| for w_k > 0
        ratio = L / initial
        rate = ratio / ratio.mean()
        target = (G.mean() * rate**alpha).detach()
        (G - target).abs().sum().backward()
        opt.step()
        with torch.no_grad():
            opt_w.clamp_(min=0)
            opt_w.mul_(k / opt_w.sum())
        weights.append(opt_w.detach().clone())
    return torch.stack(weights).numpy(), skipped


for i, (J, L) in enumerate(zip(JS, LS, strict=True)):
    alpha, lr = [1.5, 0.5][i % 2], [0.025, 0.002][i % 2]
    put("gradnorm", f"random{i}", inputs=i, alpha=alpha, lr=lr,
        **dict(zip(("weights", "skipped"), gradnorm_reference(J, L, alpha, lr),
                   strict=True)))
J, L = jacobians(3, 10), loss_paths(3)
L[0, 1] = 0.0       # the first step is skipped: L(0) comes from the second
L[5, 2] = -1.0
L[8, 0] = np.nan
J[6, 1] = 0.0
put("gradnorm", "degenerate", J=J, losses=L, alpha=1.0, lr=0.01,
    **dict(zip(("weights", "skipped"), gradnorm_reference(J, L, 1.0, 0.01),
               strict=True)))

# ------------------------------------------------------- ReLoBRaLo (Bischof & Kraus 2021)


def relobralo_reference(losses, alpha, tau, rho):
    """The authors' update (relative_balancing, ReLoBRaLoLoss.call) with EPS = 0 and a
    deterministic lookback (rho in {0, 1} is the Bernoulli draw itself)."""
    losses = torch.tensor(losses)
    k = losses.shape[1]
    lambdas, last, init = torch.ones(k), torch.ones(k), torch.ones(k)
    count, weights, skipped = 0, [], 0
    for t in range(losses.shape[0]):
        L = losses[t]
        if not bool(torch.all(torch.isfinite(L) & (L > 0))):
            skipped += 1
            weights.append(lambdas.clone())
            continue
        a = 1.0 if count == 0 else 0.0 if count == 1 else alpha
        r = 1.0 if count <= 1 else rho
        if count == 0:
            init = L.clone()
        hat = k * torch.softmax(L / (last * tau), dim=0)
        init_hat = k * torch.softmax(L / (init * tau), dim=0)
        lambdas = r * a * lambdas + (1 - r) * a * init_hat + (1 - a) * hat
        last = L.clone()
        count += 1
        weights.append(lambdas.clone())
    return torch.stack(weights).numpy(), skipped


for i, L in enumerate(LS):
    for rho in [(0.0, 1.0), (1.0,)][i % 2]:
        alpha, tau = [0.999, 0.9][i % 2], [0.1, 1.0][i % 2]
        w, skipped = relobralo_reference(L, alpha, tau, rho)
        put("relobralo", f"random{i}_rho{int(rho)}", inputs=i, alpha=alpha, tau=tau, rho=rho,
            weights=w, skipped=skipped)
L = loss_paths(3)
L[0, 0] = 0.0
L[4, 1] = np.nan
L[7, 2] = -2.0
for rho in (0.0, 1.0):
    w, skipped = relobralo_reference(L, 0.8, 0.5, rho)
    put("relobralo", f"degenerate_rho{int(rho)}", losses=L, alpha=0.8, tau=0.5, rho=rho,
        weights=w, skipped=skipped)

# -------------------------------------------------------- SoftAdapt (Heydari et al. 2019)


def softadapt_reference(losses, beta, normalized, loss_weighted):
    """The authors' variants with a two-loss history: slope L(t) - L(t-1) (their first-order
    finite difference), softmax shifted by its max, epsilon 0; the normalized variant
    divides by sum |s| (pinnx's choice); weights times K."""
    losses = torch.tensor(losses)
    k = losses.shape[1]
    w, last = torch.ones(k), None
    weights, skipped = [], 0
    for t in range(losses.shape[0]):
        L = losses[t]
        if not bool(torch.all(torch.isfinite(L))):
            skipped += 1
            weights.append(w.clone())
            continue
        if last is None:
            w, last = torch.ones(k), L.clone()
            weights.append(w.clone())
            continue
        s = L - last
        if normalized:
            s = s / s.abs().sum() if s.abs().sum() > 0 else torch.zeros(k)
        e = torch.exp(beta * (s - s.max()))
        if loss_weighted:
            e = e * (L + last) / 2
        w = k * e / e.sum()
        last = L.clone()
        weights.append(w.clone())
    return torch.stack(weights).numpy(), skipped


VARIANTS = {"plain": (False, False), "normalized": (True, False),
            "loss_weighted": (False, True), "both": (True, True)}
for i, L in enumerate(LS):
    for variant in [("plain", "both"), ("normalized",), ("loss_weighted",)][i % 3]:
        norm, lw = VARIANTS[variant]
        beta = [0.1, 5.0, -2.0][i % 3]
        w, skipped = softadapt_reference(L, beta, norm, lw)
        put("softadapt", f"random{i}_{variant}", inputs=i, beta=beta, normalized=norm,
            loss_weighted=lw, weights=w, skipped=skipped)
L = loss_paths(3) - 0.5  # some negative losses: fine for the plain slopes
L[3, 1] = np.nan
L[6] = L[5]  # all slopes zero
for variant, norm in {"plain": False, "normalized": True}.items():
    w, skipped = softadapt_reference(L, 1.0, norm, False)
    put("softadapt", f"degenerate_{variant}", losses=L, beta=1.0, normalized=norm,
        loss_weighted=False, weights=w, skipped=skipped)

# ---------------------------------------------------------------- DWA (Liu et al. 2019)


def dwa_reference(losses, temperature):
    losses = torch.tensor(losses)
    k = losses.shape[1]
    history, w = [], torch.ones(k)
    weights, skipped = [], 0
    for t in range(losses.shape[0]):
        if len(history) >= 2:
            ratio = history[-1] / history[-2]
            w = k * torch.softmax(ratio / temperature, dim=0)
        weights.append(w.clone())
        L = losses[t]
        if bool(torch.all(torch.isfinite(L) & (L > 0))):
            history.append(L.clone())
        else:
            skipped += 1
    return torch.stack(weights).numpy(), skipped


for i, L in enumerate(LS):
    temperature = [2.0, 0.5][i % 2]
    w, skipped = dwa_reference(L, temperature)
    put("dwa", f"random{i}", inputs=i, temperature=temperature, weights=w, skipped=skipped)
L = loss_paths(2)
L[1, 0] = 0.0
L[4, 1] = np.inf
w, skipped = dwa_reference(L, 2.0)
put("dwa", "degenerate", losses=L, temperature=2.0, weights=w, skipped=skipped)

# ---------------------------------------------------- uncertainty (Kendall et al. 2018)


def uncertainty_reference(losses, lr, init):
    losses = torch.tensor(losses)
    k = losses.shape[1]
    s = torch.nn.Parameter(torch.full((k,), init))
    opt = torch.optim.Adam([s], lr=lr)
    used, log_vars, skipped = [], [], 0
    for t in range(losses.shape[0]):
        L = losses[t]
        used.append(torch.exp(-s.detach()))
        if bool(torch.all(torch.isfinite(L) & (L > 0))):
            opt.zero_grad()
            (torch.exp(-s) * L + s).sum().backward()
            opt.step()
        else:
            skipped += 1
        log_vars.append(s.detach().clone())
    return torch.stack(used).numpy(), torch.stack(log_vars).numpy(), skipped


for i, L in enumerate(LS):
    lr, init = [0.05, 0.3][i % 2], [0.0, 1.0][i % 2]
    used, log_vars, skipped = uncertainty_reference(L, lr, init)
    put("uncertainty", f"random{i}", inputs=i, lr=lr, init=init, weights=used,
        log_vars=log_vars, skipped=skipped)
L = loss_paths(3)
L[2, 0] = 0.0
L[5, 1] = -0.1
L[9, 2] = np.nan
used, log_vars, skipped = uncertainty_reference(L, 0.1, 0.0)
put("uncertainty", "degenerate", losses=L, lr=0.1, init=0.0, weights=used, log_vars=log_vars,
    skipped=skipped)

# ----------------------------------------------------------------- MultiAdam (Yao et al.)


def multiadam_reference(J, b1, b2, eps):
    """Direction (1/K) sum_k u_k with u_k = -(one torch.optim.Adam step of size 1 on task k)."""
    J = torch.tensor(J)
    k, p = J.shape[1], J.shape[2]
    thetas = [torch.nn.Parameter(torch.zeros(p)) for _ in range(k)]
    opts = [torch.optim.Adam([th], lr=1.0, betas=(b1, b2), eps=eps) for th in thetas]
    dirs = []
    for t in range(J.shape[0]):
        steps = []
        for j in range(k):
            before = thetas[j].detach().clone()
            thetas[j].grad = J[t, j].clone()
            opts[j].step()
            steps.append(before - thetas[j].detach())
        dirs.append(torch.stack(steps).mean(dim=0))
    return torch.stack(dirs).numpy()


for i, J in enumerate(JS):
    b1, b2, eps = [(0.99, 0.99, 1e-8), (0.9, 0.999, 1e-6)][i % 2]
    put("multiadam", f"random{i}", inputs=i, b1=b1, b2=b2, eps=eps,
        direction=multiadam_reference(J, b1, b2, eps))
J = jacobians(3, 6)
J[:, 1] = 0.0  # a task whose gradient is always zero
put("multiadam", "degenerate", J=J, b1=0.99, b2=0.99, eps=1e-8,
    direction=multiadam_reference(J, 0.99, 0.99, 1e-8))

path = pathlib.Path(__file__).with_name("weightings_reference.npz")
np.savez_compressed(path, **OUT)
print(f"wrote {len(OUT)} arrays to {path}")
