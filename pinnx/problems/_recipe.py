"""`Recipe`: how a problem is trained by default (network, chain, schedule, steps, points)."""

import dataclasses

import optax

__all__ = ["Recipe", "SCHEDULES"]


def _warmup_cosine(lr: float, steps: int) -> optax.Schedule:
    # linear warm-up over a tenth of the run (at most 500 steps), cosine decay to 1e-5
    return optax.warmup_cosine_decay_schedule(0.0, lr, min(500, steps // 10 + 1), steps, 1e-5)


def _step_decay(lr: float, steps: int) -> optax.Schedule:
    # the learning-rate-annealing paper's schedule: x0.9 every 1,000 steps
    del steps
    return optax.exponential_decay(lr, transition_steps=1000, decay_rate=0.9, staircase=True)


def _constant(lr: float, steps: int) -> optax.Schedule:
    del steps
    return optax.constant_schedule(lr)


SCHEDULES = {
    "warmup_cosine": _warmup_cosine,
    "step_decay": _step_decay,
    "constant": _constant,
}
"""Learning-rate schedules by name: `SCHEDULES[name](peak_lr, steps) -> optax.Schedule`.

- "warmup_cosine": linear warm-up from 0 over min(500, steps // 10 + 1) steps, then cosine
  decay to 1e-5 at `steps`;
- "step_decay": lr * 0.9^(step // 1000) (Wang, Teng, Perdikaris 2021);
- "constant": lr throughout.
"""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The default training set-up of a problem, as plain data (strings and numbers).

    `pinnx run <problem>` and `pinnx diagnose <problem>` read it; command-line options
    replace single fields (`dataclasses.replace(recipe, steps=...)`). Every field is a
    string, int or float, so a recipe can be written to and read from a TOML file.

    Attributes:
        combiner: the chain in the `--combiner` grammar, e.g. "pcgrad | adam"; optimizers
            written without a learning rate get `learning_rate()`.
        steps: training steps.
        width: hidden units per layer of the tanh MLP.
        depth: hidden layers of the MLP.
        n_pde: residual points per batch (the problem factory's `n_pde`).
        lr: peak learning rate of the schedule.
        resample_every: draw a fresh batch every this many steps.
        schedule: a name in `SCHEDULES` ("warmup_cosine", "step_decay" or "constant").

    Examples:
        >>> import dataclasses
        >>> from pinnx.problems import Recipe
        >>> recipe = Recipe("pcgrad | adam", steps=1000, width=32, depth=4, n_pde=500,
        ...                 lr=1e-3, resample_every=100, schedule="constant")
        >>> float(recipe.learning_rate()(500))
        0.001
        >>> dataclasses.replace(recipe, steps=2000).steps
        2000
    """

    combiner: str
    steps: int
    width: int
    depth: int
    n_pde: int
    lr: float
    resample_every: int
    schedule: str

    def __post_init__(self):
        if not isinstance(self.combiner, str) or not self.combiner.strip():
            raise ValueError(f"combiner must be a non-empty chain spec, got {self.combiner!r}")
        for name in ("steps", "width", "depth", "n_pde", "resample_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not (
                0 < self.lr < float("inf")):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.schedule!r}")

    def learning_rate(self) -> optax.Schedule:
        """The learning-rate schedule: `SCHEDULES[schedule](lr, steps)`."""
        return SCHEDULES[self.schedule](self.lr, self.steps)
