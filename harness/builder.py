"""A TrainConfig turned into everything a run needs (Acme's builder): the plan (model
shapes from the dataset's specs, steps from the FLOP budget), the dataset with its train
and held-out samplers, the networks, and the learner with its optimizers and run
constants. `build_job` is the one place a job is assembled: training, the launcher's
throughput measurement and every benchmark call it. The learner itself never sees the
config.

    job = build_job(TrainConfig(preset="tiny", dataset="results/data/demo", steps=1000))
    state = job.learner.init(job.config.seed)
    state, metrics = job.learner.update(state, job.learner.shard_batch(job.train_sampler.sample_at(0)))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optax
from jax.sharding import Mesh

from harness.config import MAX_STEPS, TrainConfig
from harness.data import sampler as sampler_lib
from harness.data import storage
from harness.learner import Learner, LearnerHyperparams, RunConstants, run_constants as _run_constants
from harness.update_passes import update_flops
from models import counts, presets
from models.config import PACConfig
from models.networks import PACNetworks, make_networks

_HYPERPARAM_NAMES = tuple(f.name for f in dataclasses.fields(LearnerHyperparams))


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a TrainConfig resolves to on its dataset: the model and the run's length."""

    model: PACConfig
    task_names: tuple[str, ...]
    action_repeats: tuple[int, ...]
    # Per task, the factor that brings its per-step rewards into [-1, 1] (dm_control: 1 /
    # action repeat, since rewards are in [0, 1] per control step; imported data: its spec's).
    reward_scales: tuple[float, ...]
    steps: int
    flops_per_update: int
    params: int
    params_nonembedding: int
    tokens_per_example: int

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = dataclasses.asdict(self.model)
        return data


def plan_run(config: TrainConfig) -> RunPlan:
    """Resolves model shapes from the dataset's specs (arrays are not read) and the steps
    from the FLOP budget. Cheap: the launcher calls it for every grid cell."""
    config.validate()
    names = tuple(config.tasks) if config.tasks else tuple(storage.list_tasks(config.dataset))
    if not names:
        raise storage.DatasetError(f"{config.dataset}: no task datasets found (generate them with `pac data`)")
    specs = [storage.read_spec(config.dataset, name) for name in names]
    obs_dim = max(int(s["observation_dim"]) for s in specs)
    act_dim = max(int(s["action_dim"]) for s in specs)
    for field, need in (("max_obs_dim", obs_dim), ("max_action_dim", act_dim)):
        have = getattr(config, field)
        if have is not None and have < need:
            raise ValueError(f"{field}={have} is too small for dataset {config.dataset}, whose largest task needs {need}")
    model = presets.get_preset(
        config.preset,
        max_obs_dim=config.max_obs_dim or obs_dim,
        max_action_dim=config.max_action_dim or act_dim,
        num_tasks=len(names),
        compute_dtype=config.compute_dtype,
        obs_value_embedding=config.obs_value_embedding,
        attention=config.attention,
        # Rewards are scaled into [0, 1] per step (sampler_options), or [-1, 1] where some
        # task's rewards go negative, so returns, and the distributional critic's support,
        # lie in [0 or -1 / (1 - discount), 1 / (1 - discount)].
        v_min=-1.0 / (1.0 - config.discount) if any(storage.reward_range(s)[0] < 0 for s in specs) else 0.0,
        v_max=1.0 / (1.0 - config.discount),
    )
    return plan_model(config, model, names, tuple(int(s["action_repeat"]) for s in specs),
                      tuple(storage.reward_scale(s) for s in specs))


def plan_model(config: TrainConfig, model: PACConfig, task_names: tuple[str, ...] = (),
               action_repeats: tuple[int, ...] = (), reward_scales: tuple[float, ...] = ()) -> RunPlan:
    """The plan of `config` on a resolved model: FLOPs per update and steps (without tasks:
    a model of given shapes, trained on random batches by the benchmarks)."""
    config.validate()
    flops = update_flops(model, learner_hyperparams(config))
    if config.steps is not None:
        steps = config.steps
    else:
        if config.flop_budget // flops > MAX_STEPS:
            raise ValueError(f"flop_budget={config.flop_budget:.3g} is {config.flop_budget // flops:.3g} updates of preset "
                             f"{config.preset} at batch {config.batch_size}, more than {MAX_STEPS} (the step counter is int32)")
        steps = int(config.flop_budget // flops)
        if steps < 1:
            raise ValueError(f"flop_budget={config.flop_budget:.3g} is less than one update ({flops:.3g} FLOPs for "
                             f"preset {config.preset} at batch {config.batch_size})")
    return RunPlan(
        model=model,
        task_names=task_names,
        action_repeats=action_repeats,
        reward_scales=reward_scales,
        steps=steps,
        flops_per_update=flops,
        params=counts.param_count(model),
        params_nonembedding=counts.non_embedding_param_count(model),
        tokens_per_example=model.num_input_tokens,
    )


def sampler_options(config: TrainConfig, plan: RunPlan) -> dict[str, Any]:
    """The Sampler arguments a run's train and held-out samplers share: the model's padded
    sizes, the split, the task weighting, the Monte-Carlo discount and tail, and rewards scaled into
    [-1, 1] per step (dm_control: divided by the task's action repeat, into [0, 1])."""
    return dict(max_observation_dim=plan.model.max_obs_dim, max_action_dim=plan.model.max_action_dim,
                valid_fraction=config.valid_fraction, task_weighting=config.task_weighting,
                mc_discount=config.discount, mc_return_tail=config.mc_return_tail,
                reward_scale=dict(zip(plan.task_names, plan.reward_scales)))


def learner_hyperparams(config: TrainConfig) -> LearnerHyperparams:
    """The TrainConfig fields the update reads (LearnerHyperparams keeps their names)."""
    return LearnerHyperparams(**{name: getattr(config, name) for name in _HYPERPARAM_NAMES})


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW at unit learning rate: the update clips the gradients first (globally or per
    loss) and multiplies by the schedule's rate (decoupled weight decay is scaled by it
    too, as in AdamW)."""
    return optax.adamw(1.0, weight_decay=config.weight_decay)


def temperature_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam on log eta for MPO's dual; a fixed temperature gets zero updates."""
    return optax.adam(config.temperature_learning_rate) if config.temperature == "dual" else optax.set_to_zero()


def run_constants(config: TrainConfig, total_steps: int) -> RunConstants:
    """The run's alpha, seed and schedule length (warm-up: warmup_fraction of it)."""
    return _run_constants(config.alpha, config.seed, total_steps, int(config.warmup_fraction * total_steps))


def make_learner(networks: PACNetworks, config: TrainConfig, total_steps: int, mesh: Mesh | None = None) -> Learner:
    """The learner of a run of `total_steps` updates with this config."""
    return Learner(networks, learner_hyperparams(config), run_constants(config, total_steps), optimizer(config),
                   temperature_optimizer(config), mesh=mesh)


@dataclasses.dataclass(frozen=True, eq=False)
class Job:
    """Everything one run needs, made from its TrainConfig by `build_job`."""

    config: TrainConfig
    plan: RunPlan
    # The dataset and its samplers (None for a job on a given model, trained on random batches).
    dataset: sampler_lib.MultiTaskDataset | None
    # The training batches: batch k is a function of (config.seed, k), the global batch of
    # every process. Its normalizer standardizes observations, in evaluation too.
    train_sampler: sampler_lib.Sampler | None
    # The held-out split (`harness.heldout.HeldOutSet` draws its fixed batches from it).
    valid_sampler: sampler_lib.Sampler | None
    networks: PACNetworks
    learner: Learner


def build_job(config: TrainConfig, *, plan: RunPlan | None = None, dataset: sampler_lib.MultiTaskDataset | None = None,
              model: PACConfig | None = None, mesh: Mesh | None = None) -> Job:
    """The plan, dataset, samplers, networks and learner of a run of `config`.

    Args:
      config: the run's config.
      plan: `plan_run(config)` when the caller has it already (it reads the specs again).
      dataset: the config's dataset when the caller has it loaded (its tasks must be the plan's).
      model: a model of given shapes instead of the dataset's: no data is read, and the
        job has no dataset or samplers (benchmarks on `harness.data.sampler.random_batch`).
      mesh: the devices the learner splits the batch over (default: all).
    """
    if model is not None:
        if plan is not None or dataset is not None:
            raise ValueError("build_job: model= builds a job without data; plan= and dataset= cannot be given with it")
        plan = plan_model(config, model)
    else:
        plan = plan or plan_run(config)
        if dataset is None:
            dataset = sampler_lib.load_dataset(config.dataset, plan.task_names)
        elif tuple(dataset.task_names) != plan.task_names:
            raise ValueError(f"the dataset given holds tasks {list(dataset.task_names)}, the plan {list(plan.task_names)}")
    train_sampler = valid_sampler = None
    if dataset is not None:
        options = sampler_options(config, plan)
        train_sampler = sampler_lib.Sampler(dataset, config.batch_size, "train", seed=config.seed,
                                            top_episode_fraction=config.top_episode_fraction,
                                            sample_weighting=config.sample_weighting,
                                            sample_kl_epsilon=config.sample_kl_epsilon, **options)
        valid_sampler = sampler_lib.Sampler(dataset, config.valid_batch_size, "valid", **options)
    networks = make_networks(plan.model)
    return Job(config, plan, dataset, train_sampler, valid_sampler, networks,
               make_learner(networks, config, plan.steps, mesh=mesh))
