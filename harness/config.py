"""TrainConfig: everything that defines one training job (one grid cell).

One frozen dataclass, shared by `pac train`, the grid launcher and the tests. The
resolved config is written into the run folder; restarting into that folder with a
different config is refused. Text becomes a field's value in one place,
`TrainConfig.parse_field` (`pac train`'s flags and the benchmarks' `--set` alike), and a
config is checked in one place, `TrainConfig.validate` (the grid spec's alphas too).

Convention for the BC/RL weight (design.md section 3, the paper's):
  L_policy = -[ alpha * log pi(a_data|s) + (1 - alpha) * sum_j w_j log pi(a_j|s) ]
so alpha = 1 is behavioural cloning ("BC+Q": the critic is still trained, so BC and PAC
runs of one size cost the same FLOPs), and alpha < 1 moves toward KL-regularized RL.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import typing
from typing import Any, Mapping, Optional

from models.helpers import checked_replace


# The training state counts steps in int32.
MAX_STEPS = 2**31 - 1
# Fields that change only what a run writes, not what it computes: a run folder or a grid
# resumes whatever they are set to.
OUTPUT_FIELDS = ("tensorboard",)
# The allowed values of TrainConfig's string fields (validate() checks them; the CLI lists them).
CHOICES: dict[str, tuple[str, ...]] = {
    "temperature": ("dual", "fixed"), "eval_mode": ("mode", "mean", "local_mean", "sample"), "target_update": ("polyak", "hard"),
    "critic_target": ("expected", "distributional", "monte_carlo"), "gradient_clipping": ("global", "per_loss"),
    "obs_value_embedding": ("lookup", "linear"), "attention": ("einsum", "xla", "cudnn"),
    "action_sampling": ("gumbel", "inverse_cdf"), "policy_improvement": ("sampled", "data_advantage"),
    "advantage_estimate": ("critic", "monte_carlo"), "mc_return_tail": ("cut", "extend"), "advantage_baseline": ("critic", "calibrated"), "task_weighting": ("uniform", "transitions"),
    "sample_weighting": ("uniform", "episode_return", "return_to_go"),
    "compute_dtype": ("float32", "bfloat16")}
# How a bool field is spelled in text (any case), in flags and --set alike.
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # --- What to train ---------------------------------------------------------------
    preset: str = "tiny"  # model size preset (see `pac models`).
    dataset: str = "results/data/demo"  # dataset directory written by `pac data`.
    tasks: Optional[tuple[str, ...]] = None  # subset of the dataset's tasks (default all).
    compute_dtype: str = "float32"  # 'bfloat16' on accelerators; params stay float32.
    # The model's padded input/output sizes; default: the dataset's largest task. Set
    # them larger to keep one model shape across datasets.
    max_obs_dim: Optional[int] = None
    max_action_dim: Optional[int] = None

    # --- How long: exactly one of the two -----------------------------------------------
    flop_budget: Optional[float] = None  # training FLOPs; steps = budget / FLOPs per update.
    steps: Optional[int] = None  # or a fixed number of updates.
    batch_size: int = 64

    # --- Algorithm (design.md section 3) -----------------------------------------------
    alpha: float = 0.5  # BC weight: 1 = BC (+Q), < 1 = PAC.
    # 0.95, not the paper's 0.99: within the budgets of a CPU grid (hundreds to thousands
    # of updates) a 100-step horizon leaves the critic unable to rank actions (measured:
    # rank correlation 0.37 at 0.99 vs 0.61 at 0.95 after 600 updates; benchmarks/critic_diagnostics).
    discount: float = 0.95
    num_sampled_actions: int = 20  # N actions per state for the improvement step.
    num_target_actions: int = 1  # a' ~ pi_target(.|s') per transition for the TD target.
    temperature: str = "dual"  # 'dual': eta fitted by MPO's dual; 'fixed': eta = initial.
    initial_temperature: float = 0.1
    temperature_learning_rate: float = 1e-2  # Adam on log eta (MPO's dual step).
    # Floor on eta (MPO keeps one): without it the dual follows a flat critic down to ~0
    # and the weights pick actions by the critic's noise. 0.01 lies between an untrained
    # critic's noise spread over actions (~0.004) and real action effects (0.05-0.2).
    min_temperature: float = 0.01
    kl_epsilon: float = 0.1  # KL bound of the improved policy (dual temperature).
    # The critic's TD target, a distribution on the value support: 'expected' = the
    # two-hot of r + gamma * E[Z_target(s', a')] (categorical regression of the expected
    # return); 'distributional' = the projected distribution of r + gamma * Z_target (C51);
    # 'monte_carlo' = the two-hot of the data's discounted return-to-go (mc_return_tail ends
    # it at a time limit): the behaviour policy's Q, learned without bootstrapping (the
    # critic of one-step RL), so its scale does not wait on the target network. Measured,
    # not adopted (2026-12-01, 2-core CPU, demo data, the comparison's PAC: 130k, 5k updates
    # at batch 256, discount 0.99, MC advantage; calibration seeds 7 and 8, 10 episodes a
    # task): its V(s) spans the returns' spread (std 31-47 vs 33-49; 'expected' 7-9), the
    # advantage left is 6-13, the weights' share on the top-quarter episodes falls from
    # 46-77% to 19-38% (their transitions' share: 24-25%), and the return from 0.59 to 0.51
    # (0.55 at advantage_kl_epsilon 0.3); README, "PAC vs BC, calibrated", has the table.
    critic_target: str = "expected"
    # The policy's training target: its log-likelihoods (BC's and the improvement's) are
    # cross-entropies against a Gaussian over the bins with this std in action units,
    # centred on the action (0 = the one-hot bin). The held-out bc_loss stays the plain
    # NLL. Chosen by measurement (2026-12-01, 2-core CPU, demo data, top 25% of episodes,
    # 5k updates at batch 256, 10 episodes a task on evaluation seed 7, apart from the
    # comparison's seeds 0-4): a 2x256 MLP with this head scored 0.18 at std 0, 0.39 at
    # 0.16, 0.64 at 0.32, 0.61 at 0.48, the same MLP regressing actions by MSE 0.75: the
    # one-hot target learns where the data's actions lie far slower than regression.
    policy_target_std: float = 0.32
    # The policy-improvement step of alpha < 1: 'sampled' is the paper's (MPO's weights over
    # num_sampled_actions actions of the target policy, eta by the kl_epsilon dual);
    # 'data_advantage' weights the data's own action by its advantage over those samples,
    # A = Q(s, a_data) - mean_j Q(s, a_j), with weights B * softmax_batch(A / eta) and eta by
    # a dual bounding their KL from uniform over the batch at advantage_kl_epsilon (the
    # route of CRR, AWAC and V-MPO): it reaches the data's good actions where the policy's
    # own samples rarely hold them.
    policy_improvement: str = "sampled"
    # data_advantage's A: 'critic' (Q(s, a_data) - V(s)) or 'monte_carlo' (the data's
    # discounted return-to-go - V(s)); V(s) = mean Q over the policy's samples.
    advantage_estimate: str = "critic"
    # data_advantage's baseline: 'critic' (V(s) as it is) or 'calibrated' (a + b V(s), the
    # per-task least-squares line of the batch: the critic's ranking of states at the
    # returns' scale; see harness.losses.calibrated_residual).
    advantage_baseline: str = "critic"
    advantage_kl_epsilon: float = 1.0
    # How the Monte-Carlo return (monte_carlo's A, and the diagnostics' reference) ends at a
    # time limit: 'cut' (the rewards left) or 'extend' (continued by the episode's last
    # rewards; see harness.data.sampler.returns_to_go).
    mc_return_tail: str = "cut"
    # Target networks: 'polyak' moves them toward the online params by polyak_tau every
    # update; 'hard' copies them every target_update_period updates.
    target_update: str = "polyak"
    polyak_tau: float = 0.005
    target_update_period: int = 100
    valid_fraction: float = 0.1  # held-out episodes per task (validation losses).
    task_weighting: str = "uniform"  # 'uniform' over tasks or over 'transitions'.
    # Filtered BC: train only on each task's top fraction of training episodes by return
    # (1 = all of them). With alpha = 1 this is the "BC on the best data" reference.
    top_episode_fraction: float = 1.0
    # How training draws a transition inside its task: 'uniform', or tilted toward the
    # data's better behaviour, p proportional to exp(z / T) with z the standardized
    # 'episode_return' (trajectory weighting, Hong et al. 2023: a soft filtered BC) or
    # 'return_to_go' (the mc_return at `discount`), T set so that KL(p || uniform) =
    # sample_kl_epsilon per task (or the steepest tilt, all on the best values, where a
    # task's data cannot move that far from uniform). A sampler, not a loss weight: every example of a batch
    # counts fully, where weights of the same KL leave an effective batch of a quarter.
    # Held-out losses stay on the uniform valid split. Measured, not adopted (2026-12-02,
    # 2-core CPU, demo data, the comparison's settings, calibration seeds 7 / 8, 10 episodes
    # a task; README, "PAC vs BC, calibrated"): BC on the 'return_to_go' tilt at KL 1 scored
    # 0.45 / 0.31 where PAC's in-batch weights of that KL score 0.59 / 0.58 (the tilt gives
    # each episode's first fifth half the weights' mass), and PAC on it 0.21 / 0.17; BC on
    # the 'episode_return' tilt at KL log 4 0.60 / 0.66 (filtered BC 0.60 / 0.56), PAC with
    # the Monte-Carlo critic on it 0.52 / 0.50.
    sample_weighting: str = "uniform"
    sample_kl_epsilon: float = 1.0
    # Observation value embedding: 'lookup' (interpolated table on +-obs_value_range std)
    # or 'linear' (x * w_d + e_d per dimension); see models.networks.ProprioTokenizer.
    obs_value_embedding: str = "lookup"

    # --- Optimizer ---------------------------------------------------------------------
    learning_rate: float = 1e-3  # peak; 3e-4 leaves the critic flat after 600 updates.
    warmup_fraction: float = 0.05  # linear warm-up, then cosine decay to the last step.
    final_learning_rate_fraction: float = 0.1
    weight_decay: float = 1e-4
    # 'global': clip the summed gradient to max_grad_norm; 'per_loss': clip the policy's
    # and the critic's gradients to their own maxima, then sum (costs a second encoder
    # backward, counted in the FLOPs), so the larger loss cannot set the shared step.
    gradient_clipping: str = "global"
    max_grad_norm: float = 1.0
    policy_max_grad_norm: float = 1.0
    critic_max_grad_norm: float = 1.0

    # --- Logging, checkpoints, evaluation ---------------------------------------------
    log_every: int = 50  # train metric rows.
    valid_every: int = 200  # held-out loss rows (and always at the last step).
    # Held-out losses: per task, the whole held-out split or a fixed sample of this many
    # of its transitions (chosen by the dataset, not the seed), in batches of this size.
    valid_examples_per_task: int = 4096
    valid_batch_size: int = 256
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_episodes: int = 2  # per task, in the real environment, after training.
    # How actions are read from the policy's bins (harness/evaluation.py): 'mode' (the most
    # likely bin), 'mean' (expected action), 'local_mean' (the mean around the smoothed
    # mode) or 'sample'. 'mode' measured best or level (2026-12-01, tiny, batch 256, 5k
    # updates, 10 episodes a task, demo data): BC of all data mode 0.22, local_mean 0.20,
    # sample 0.18, mean 0.07; filtered BC mode 0.32, local_mean 0.35, mean 0.29.
    eval_mode: str = "mode"
    # Also write the metrics as TensorBoard event files in <run>/tensorboard/ (needs the
    # [tensorboard] extra). Output only: not part of what defines a run or a grid.
    tensorboard: bool = False
    seed: int = 0
    # The training split lives on the device and batches are drawn there, updates_per_dispatch
    # updates in one jitted call (lax.scan); chunks end at every log, validation and
    # checkpoint step. Off (or with several processes): a host thread samples each batch.
    data_on_device: bool = True
    updates_per_dispatch: int = 50
    prefetch: int = 2  # host path: batches staged on the device ahead of the update.

    # --- Speed (the same math; benchmarks/step_profile.py measures each) ---------------
    # How actions are drawn from the policy's bins: 'inverse_cdf' (one uniform per draw)
    # or 'gumbel' (jax.random.categorical: num_action_bins Gumbel draws per draw). The same
    # distribution; inverse_cdf doubled the step's rate for small models (tiny, batch 64,
    # 2 CPU cores: 35.5 -> 74.8 updates/s), whose cost was mostly random bits.
    action_sampling: str = "inverse_cdf"
    # PACConfig.attention: 'einsum', 'xla' or 'cudnn' (GPU, bf16). einsum measured as fast
    # as 'xla' on an H200 (30m: 28.8 vs 28.4 updates/s); cuDNN's kernel rejects the
    # encoder's 33 input tokens.
    attention: str = "einsum"
    # One target-encoder call on [s; s'] (a 2B batch) instead of two calls of B.
    merge_target_encodes: bool = True
    # Let XLA reuse the training state's buffers for the new state (saves a state's worth
    # of device memory); checkpoints then save a copy, as the async write may outlive it.
    donate_state: bool = True

    def validate(self) -> "TrainConfig":
        """Raises a one-line ValueError naming the first bad field; returns self."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check_type(field.name, value)
            if isinstance(value, float) and not math.isfinite(value) and not field.name.endswith("max_grad_norm"):
                raise ValueError(f"{field.name}={value} must be a finite number")
        if (self.flop_budget is None) == (self.steps is None):
            raise ValueError(f"give exactly one of flop_budget=... and steps=... (got flop_budget={self.flop_budget}, "
                             f"steps={self.steps})")
        if self.flop_budget is not None and not self.flop_budget > 0:
            raise ValueError(f"flop_budget={self.flop_budget} must be > 0")
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps={self.steps} must be in [1, {MAX_STEPS}] (the step counter is int32)")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha} must be in [0, 1] (1 = BC, < 1 = PAC)")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount={self.discount} must be in [0, 1)")
        for name in ("batch_size", "num_sampled_actions", "num_target_actions", "target_update_period",
                     "log_every", "valid_every", "valid_examples_per_task", "valid_batch_size", "checkpoint_every", "keep_checkpoints", "prefetch",
                     "updates_per_dispatch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes={self.eval_episodes} must be >= 0")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        for name in ("learning_rate", "initial_temperature", "temperature_learning_rate", "kl_epsilon", "min_temperature",
                     "advantage_kl_epsilon", "sample_kl_epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("policy_max_grad_norm", "critic_max_grad_norm", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0 (inf = no clipping)")
        if self.initial_temperature < self.min_temperature:
            raise ValueError(f"initial_temperature={self.initial_temperature} must be >= min_temperature={self.min_temperature}")
        if not 0.0 <= self.policy_target_std <= 2.0:
            raise ValueError(f"policy_target_std={self.policy_target_std} must be in [0, 2] (action units; 0 = one-hot)")
        if not 0.0 < self.polyak_tau <= 1.0:
            raise ValueError(f"polyak_tau={self.polyak_tau} must be in (0, 1]")
        if not 0.0 < self.top_episode_fraction <= 1.0:
            raise ValueError(f"top_episode_fraction={self.top_episode_fraction} must be in (0, 1]")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction={self.warmup_fraction} must be in [0, 1)")
        # Negative decay grows the weights every step; a final fraction outside [0, 1] makes
        # the cosine schedule end above its peak or below zero.
        if not self.weight_decay >= 0.0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0.0 <= self.final_learning_rate_fraction <= 1.0:
            raise ValueError(f"final_learning_rate_fraction={self.final_learning_rate_fraction} must be in [0, 1]")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction={self.valid_fraction} must be in [0, 1)")
        return self

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def parse_field(cls, name: str, text: str) -> Any:
        """The one way text becomes a field's value (`pac train`'s flags and `--set
        name=value` both call it): a bool is true/false, 1/0, yes/no or on/off (any case),
        an int or a float as Python spells it, a tuple field's elements comma-separated.
        Only the type is checked here (a one-line ValueError); the value is `validate`'s."""
        if name not in cls.__dataclass_fields__:
            raise ValueError(f"unknown TrainConfig field {name!r}; valid: {', '.join(sorted(cls.__dataclass_fields__))}")
        kind, many = _field_kind(name)
        if many:
            return tuple(_parse_scalar(kind, part) for part in text.split(","))
        return _parse_scalar(kind, text)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrainConfig":
        data = dict(data)
        if data.get("tasks") is not None:
            data["tasks"] = tuple(data["tasks"])
        return cls().replace(**data)

    def replace(self, **changes) -> "TrainConfig":
        return checked_replace(self, **changes)

    @classmethod
    def identity_of(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """What defines a run, from a config's JSON: OUTPUT_FIELDS left out, and fields the
        JSON lacks (a config written before they existed) at their defaults."""
        return {k: v for k, v in cls.from_json(data).to_json().items() if k not in OUTPUT_FIELDS}


def parse_override(text: str) -> tuple[str, Any]:
    """'name=value' -> (name, the value parsed by `TrainConfig.parse_field`). For the
    benchmarks' --set flags; an unknown name or a badly typed value is a one-line ValueError."""
    name, _, value = text.partition("=")
    names = sorted(f.name for f in dataclasses.fields(TrainConfig))
    if name not in names:
        raise ValueError(f"--set {text}: unknown TrainConfig field {name!r}; valid: {', '.join(names)}")
    try:
        return name, TrainConfig.parse_field(name, value)
    except ValueError as err:
        raise ValueError(f"--set {text}: {err}") from None


@functools.cache
def _field_kind(name: str) -> tuple[type, bool]:
    """(the field's scalar type, whether it holds a tuple of them): Optional[int] -> (int,
    False), Optional[tuple[str, ...]] -> (str, True)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


def _parse_scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise ValueError(f"{text!r} is not a boolean; allowed: true, false (or 1, 0, yes, no)")
    if kind is str:
        return text
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"invalid {kind.__name__} value: {text!r}") from None


# What each scalar type accepts (bools are not numbers here), and how a message names one and many.
_ACCEPTS = {bool: ((bool,), "true or false", "booleans"), int: ((numbers.Integral,), "an integer", "integers"),
            float: ((numbers.Real,), "a number", "numbers"), str: ((str,), "a string", "strings")}


def _check_type(name: str, value: Any) -> None:
    """One-line ValueError unless `value` has the field's type: configs built in Python (a
    grid spec's alphas, the tests') and config.json files reach `validate` unparsed."""
    kind, many = _field_kind(name)
    if value is None and TrainConfig.__dataclass_fields__[name].default is None:
        return
    accepted, one, several = _ACCEPTS[kind]
    items = value if many and isinstance(value, (tuple, list)) else None if many else (value,)
    if items is None or any(not isinstance(v, accepted) or (kind is not bool and isinstance(v, bool)) for v in items):
        raise ValueError(f"{name}={value!r} must be {'a list of ' + several if many else one}")
