"""The learner: one jitted, data-parallel update of PAC's actor, critic and temperature.

`TrainingState` holds everything that changes during training; `Learner.update` is a
pure (state, batch) -> (state, metrics) function, jitted once. Randomness comes from
folding the step number into the run's key, so an update depends only on (state, batch):
a resumed run repeats an uninterrupted one exactly.

Passes per update (the structure `harness.update_passes` counts):
  target net on s:  encode + policy + critic on N sampled actions  -> improvement weights
                    (policy_improvement='data_advantage': and on the data action, N + 1)
  target net on s': encode + policy + critic on N' sampled actions -> TD target
                    (none with critic_target='monte_carlo': the data's return is the target)
  online net on s:  encode + policy + critic on the data action    -> losses, with grads
                    (with gradient_clipping='per_loss' the encoder's backward runs once
                    per loss, so that each loss's gradient is clipped separately)

Every update returns a dict of scalar metrics (losses, gradient norms, the temperature
and the diagnostics of `harness.diagnostics`: is the critic ranking actions, how peaked
are the improvement weights); validation returns the losses and diagnostics without
the gradients. The run's metrics.csv takes its columns from these dicts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from harness import diagnostics, losses
from harness.data import device_sampler
from harness.data.sampler import Batch, SplitArrays
from models import discretization
from models.networks import PACInputs, PACNetworks, dummy_inputs


# Folded into the run's key for the batches drawn on the device (`Learner.compile_chunk`).
_DATA_STREAM = 0x0DA7A


class TrainingState(NamedTuple):
    params: hk.Params
    target_params: hk.Params
    opt_state: optax.OptState
    log_temperature: jax.Array
    temperature_opt_state: optax.OptState
    step: jax.Array


@dataclasses.dataclass(frozen=True)
class LearnerHyperparams:
    """The numbers the update uses, and nothing else of the run (`harness.builder` maps a
    TrainConfig onto them; the fields keep TrainConfig's names, whose comments say more)."""

    batch_size: int
    # The target network's passes: N sampled actions for the improvement weights, N' for
    # the TD target, drawn by 'inverse_cdf' or 'gumbel'; one encoder call on [s; s'].
    num_sampled_actions: int
    num_target_actions: int
    action_sampling: str
    merge_target_encodes: bool
    discount: float
    # 'expected' (two-hot of the mean), 'distributional' (C51) or 'monte_carlo' (two-hot of
    # the data's return-to-go: no target-network pass on s').
    critic_target: str
    # 'sampled': MPO's step over N policy samples (the paper's); 'data_advantage': the data
    # action weighted by its advantage over the policy's samples (CRR/AWAC/V-MPO's route).
    # Std, in action units, of the Gaussian target the policy's log-likelihoods are taken
    # against (0: the one-hot bin of the action; see losses.smoothed_action_log_prob).
    policy_target_std: float
    policy_improvement: str
    # 'critic': A = Q(s, a_data) - V(s); 'monte_carlo': the data's discounted return-to-go
    # from (s, a_data) - V(s) (AWR's estimate); V(s) = mean_j Q(s, a_j) over the policy's samples.
    advantage_estimate: str
    # 'critic': V(s) as it is; 'calibrated': a + b V(s), fitted per task on the batch
    # (losses.calibrated_residual).
    advantage_baseline: str
    advantage_kl_epsilon: float
    # MPO's temperature: its initial value, its floor, and the KL bound of its dual.
    initial_temperature: float
    min_temperature: float
    kl_epsilon: float
    gradient_clipping: str  # 'global' or 'per_loss'.
    max_grad_norm: float
    policy_max_grad_norm: float
    critic_max_grad_norm: float
    target_update: str  # 'polyak' or 'hard'.
    polyak_tau: float
    target_update_period: int
    # The learning-rate schedule (`learning_rate_at`): peak, end as a fraction of it.
    learning_rate: float
    final_learning_rate_fraction: float
    donate_state: bool


class RunConstants(NamedTuple):
    """Per-run numbers passed to the jitted update as arguments, not baked in as constants.

    Grid cells of one preset then share one compiled program (and JAX's persistent
    compilation cache hits across cells): only shapes and the algorithm's structure are
    static, while alpha, the seed and the schedule's length vary per cell.
    """

    alpha: jax.Array  # float32: BC weight.
    seed: jax.Array  # int32: the run's randomness.
    total_steps: jax.Array  # int32: cosine decay ends here.
    warmup_steps: jax.Array  # int32


def run_constants(alpha: float, seed: int, total_steps: int, warmup_steps: int) -> RunConstants:
    return RunConstants(
        alpha=jnp.asarray(alpha, jnp.float32),
        seed=jnp.asarray(seed, jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        warmup_steps=jnp.asarray(warmup_steps, jnp.int32),
    )


def learning_rate_at(step: jax.Array, constants: RunConstants, hyperparams: LearnerHyperparams) -> jax.Array:
    """Linear warm-up to the peak, then cosine decay to final_learning_rate_fraction * peak
    exactly at the run's last step (optax's warmup_cosine_decay_schedule, written for
    traced step counts)."""
    peak = hyperparams.learning_rate
    end = peak * hyperparams.final_learning_rate_fraction
    step = step.astype(jnp.float32)
    warmup = constants.warmup_steps.astype(jnp.float32)
    decay = jnp.maximum(constants.total_steps.astype(jnp.float32) - warmup, 1.0)
    progress = jnp.clip((step - warmup) / decay, 0.0, 1.0)
    cosine = end + 0.5 * (peak - end) * (1.0 + jnp.cos(jnp.pi * progress))
    return jnp.where(step < warmup, peak * step / jnp.maximum(warmup, 1.0), cosine)


def planned_bytes_of(compiled: Any) -> int | None:
    """Device bytes of a compiled program's memory plan: arguments, outputs and temporaries,
    less what is aliased (donated). None where the backend gives no plan (never 0, which
    would pass every memory check)."""
    memory = compiled.memory_analysis()
    if memory is None:
        return None
    return int(memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
               - memory.alias_size_in_bytes)


def stack(trees: list[Any]) -> Any:
    """Pytrees of one structure stacked along a new leading axis (a pack of runs)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Run `index` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh over all devices of all processes: data parallelism over the batch.

    In a multi-host job (after jax.distributed.initialize) the mesh spans every host, and
    each process feeds its own slice of the global batch (`Learner.shard_batch`).
    """
    devices = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devices.reshape(-1), ("batch",))


def host_local(tree: Any) -> Any:
    """numpy copies of a replicated pytree, read from this process's own devices (a
    replicated array of a multi-host mesh is not fully addressable from any one host)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def _inputs(batch: Batch, next_state: bool = False) -> PACInputs:
    return PACInputs(
        obs=batch.next_observation if next_state else batch.observation,
        obs_mask=batch.observation_mask,
        task_id=batch.task_id,
        action_mask=batch.action_mask,
    )


class Learner:
    """The jitted update and validation functions of one network (Acme's learner shape: it
    takes its networks, optimizers and the numbers it uses; `harness.builder` makes one from
    a TrainConfig).

    Args:
      networks: the Haiku networks.
      hyperparams: the numbers the update uses.
      constants: the run's alpha, seed and schedule length (arguments of the compiled
        programs, so runs that differ only in them share one; a pack stacks several).
      optimizer: applied to the clipped gradient at unit scale; the update multiplies its
        output by `learning_rate_at(step)`.
      temperature_optimizer: steps log eta on MPO's dual (`optax.set_to_zero()` keeps eta fixed).
      mesh: the devices the batch is split over (default: all).
    """

    def __init__(self, networks: PACNetworks, hyperparams: LearnerHyperparams, constants: RunConstants,
                 optimizer: optax.GradientTransformation, temperature_optimizer: optax.GradientTransformation,
                 mesh: Mesh | None = None):
        self.networks = networks
        self.hyperparams = hyperparams
        self.mesh = mesh or make_mesh()
        self.optimizer = optimizer
        self.constants = constants
        self._temperature_optimizer = temperature_optimizer
        model = networks.config
        self.support = discretization.value_support(model.v_min, model.v_max, model.num_value_bins)
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        # With donate_state the old state's buffers become the new state's: checkpoints then
        # save a copy (`checkpointable`), since an async write may still be reading them.
        donate = (0,) if hyperparams.donate_state else ()
        self._update_jit = jax.jit(self._update, out_shardings=(self.replicated, self.replicated), donate_argnums=donate)
        self._update_chunk_jit = jax.jit(self._update_chunk, out_shardings=(self.replicated, self.replicated),
                                         donate_argnums=donate)
        self._sampled_chunk_jit = jax.jit(self._sampled_chunk, out_shardings=(self.replicated, self.replicated),
                                          donate_argnums=donate)
        self._validation_jit = jax.jit(self._validation_metrics, out_shardings=self.replicated)
        self._weights_jit = jax.jit(self._weights)
        # Several runs of one model that differ only in their RunConstants (alpha, seed),
        # trained as one program: states and constants get a leading run axis.
        self._packed_chunk_jit = jax.jit(jax.vmap(self._sampled_chunk, in_axes=(0, None, 0, None)),
                                         donate_argnums=donate)

    def update(self, state: TrainingState, batch: Batch) -> tuple[TrainingState, dict[str, Any]]:
        """One jitted learner step: (state, batch) -> (new state, metrics)."""
        return self._update_jit(state, batch, self.constants)

    def update_chunk(self, state: TrainingState, batches: Batch) -> tuple[TrainingState, dict[str, Any]]:
        """K learner steps in one dispatch (a lax.scan over batches stacked on a leading
        axis of K): the same updates as K calls of `update`; metrics come back stacked [K]."""
        return self._update_chunk_jit(state, batches, self.constants)

    def planned_bytes(self, state: TrainingState, data: SplitArrays | None = None,
                      batch: Batch | None = None) -> int:
        """Device bytes XLA's memory plan gives the training program (arguments, outputs
        and temporaries, less what is aliased): the device-sampled chunk when `data` is
        given, else one update on `batch`. Compiling it here costs a persistent-cache hit
        when training then runs the same program."""
        if data is not None:
            return self.compile_chunk(state, data)[1]
        return planned_bytes_of(self._update_jit.lower(state, batch, self.constants).compile())

    def compile_chunk(self, state: TrainingState, data: SplitArrays,
                      constants: RunConstants | None = None) -> tuple[Any, int]:
        """The device-sampled chunk compiled ahead of time for these shapes: one run, or a
        pack when `constants` (and `state`) are stacked (see `stack`). Returns (chunk, planned
        device bytes), where chunk(state, length) -> (state, metrics) runs `_sampled_chunk`
        (for a pack: jax.vmap of it over the runs, each drawing its own batches from its own
        seed) on `data` without compiling again, so the training loop and its memory check
        share one compilation."""
        function = self._sampled_chunk_jit if constants is None else self._packed_chunk_jit
        constants = self.constants if constants is None else constants
        compiled = function.lower(state, data, constants, jnp.asarray(1, jnp.int32)).compile()

        def chunk(state: TrainingState, length: int) -> tuple[TrainingState, dict[str, Any]]:
            return compiled(state, data, constants, jnp.asarray(length, jnp.int32))

        return chunk, planned_bytes_of(compiled)

    def place_data(self, data: SplitArrays) -> SplitArrays:
        """The split's arrays, replicated on every device of the mesh (one process)."""
        return jax.device_put(data, self.replicated)

    @property
    def step_fn(self):
        """The pure update (state, batch, RunConstants) -> (state, metrics), for callers
        that transform it further (e.g. jax.vmap over cells of one preset)."""
        return self._update

    def checkpointable(self, state: TrainingState) -> TrainingState:
        """The state to hand to an async checkpoint: a device copy when the next update
        will donate (overwrite) the state's buffers, else the state itself."""
        return jax.tree.map(jnp.copy, state) if self.hyperparams.donate_state else state

    def validation_metrics(self, state: TrainingState, batch: Batch) -> dict[str, Any]:
        """Held-out losses of the current params on a batch (no update)."""
        return self._validation_jit(state, batch, self.constants)

    def improvement_weights(self, state: TrainingState, batch: Batch, seed: int = 0) -> tuple[jax.Array, jax.Array]:
        """The policy-improvement weights an update at `state` gives `batch` (no update):
        [B] for 'data_advantage' (mean 1), [B, N] over the policy's samples for 'sampled';
        and the target critic's Q of those N samples [B, N] (data_advantage: then of the
        data's action, [B, N + 1]). For diagnostics of where the step pulls the policy."""
        return self._weights_jit(state, batch, jax.random.key(seed))

    def _weights(self, state: TrainingState, batch: Batch, key) -> tuple[jax.Array, jax.Array]:
        _, sampled_q, _ = self._target_passes(state.target_params, batch, key)
        weights, _, _ = self._improvement(sampled_q, jnp.exp(state.log_temperature), batch)
        return weights, sampled_q

    def init(self, seed: int) -> TrainingState:
        """The initial state, built in one jitted call (op-by-op Haiku init compiles every
        op separately, which costs tens of seconds on a CPU)."""

        def initial_state(key):
            params = self.networks.init(key, dummy_inputs(self.networks.config, 1))
            log_temperature = jnp.log(jnp.asarray(self.hyperparams.initial_temperature, jnp.float32))
            return TrainingState(
                params=params,
                target_params=params,
                opt_state=self.optimizer.init(params),
                log_temperature=log_temperature,
                temperature_opt_state=self._temperature_optimizer.init(log_temperature),
                step=jnp.zeros((), jnp.int32),
            )

        return jax.jit(initial_state, out_shardings=self.replicated)(jax.random.key(seed))

    def shard_batch(self, batch: Batch) -> Batch:
        """Places this process's batch on the mesh. With several processes, `batch` is this
        process's slice and the result is the global batch of all of them."""
        local_devices = self.mesh.size // jax.process_count()
        if batch.reward.shape[0] % local_devices:
            raise ValueError(f"batch_size={batch.reward.shape[0]} must divide evenly over {local_devices} devices")
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch_sharding)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.batch_sharding, x), batch)

    def _target_passes(self, target_params, batch: Batch, key):
        """The target network's passes (no gradients): N policy samples at s with their Q
        (the improvement weights' inputs) and the critic's target: the projected TD target at s',
        or with critic_target 'monte_carlo' the two-hot of the data's return-to-go."""
        cfg, net, model = self.hyperparams, self.networks, self.networks.config
        fmask = batch.action_mask.astype(jnp.float32)
        sample_key, next_key = jax.random.split(key)
        bootstrap = cfg.critic_target != "monte_carlo"  # the Monte-Carlo target never looks at s'
        if bootstrap and cfg.merge_target_encodes:
            # One encoder and one policy call on [s; s'] (same math, larger matmuls).
            both = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), _inputs(batch), _inputs(batch, next_state=True))
            latents = net.encode(target_params, both)
            target_latents, next_latents = jnp.split(latents, 2)
            target_policy, next_policy = jnp.split(net.policy_logits(target_params, latents), 2)
        else:
            target_latents = net.encode(target_params, _inputs(batch))
            target_policy = net.policy_logits(target_params, target_latents)
            if bootstrap:
                next_latents = net.encode(target_params, _inputs(batch, next_state=True))
                next_policy = net.policy_logits(target_params, next_latents)
        sampled_bins = losses.sample_action_bins(sample_key, target_policy, cfg.num_sampled_actions, cfg.action_sampling)
        sampled_actions = discretization.bin_to_action(sampled_bins, model.num_action_bins) * fmask[:, None]
        if cfg.policy_improvement == "data_advantage":
            # The data action is one more critic query beside the N samples (counted in the FLOPs).
            sampled_actions = jnp.concatenate([sampled_actions, batch.action[:, None, :] * fmask[:, None]], axis=1)
        sampled_q = discretization.categorical_mean(
            net.q_logits(target_params, target_latents, sampled_actions, batch.action_mask), self.support)

        if bootstrap:
            next_bins = losses.sample_action_bins(next_key, next_policy, cfg.num_target_actions, cfg.action_sampling)
            next_actions = discretization.bin_to_action(next_bins, model.num_action_bins) * fmask[:, None]
            next_q_logits = net.q_logits(target_params, next_latents, next_actions, batch.action_mask)
            target_fn = losses.td_target_two_hot if cfg.critic_target == "expected" else losses.td_target_distribution
            target_probs = target_fn(next_q_logits, batch.reward, cfg.discount * batch.discount, self.support)
        else:
            target_probs = losses.two_hot(batch.mc_return, self.support)
        return jax.lax.stop_gradient(sampled_bins), jax.lax.stop_gradient(sampled_q), jax.lax.stop_gradient(target_probs)

    def _policy_loss(self, params, latents, batch: Batch, sampled_bins, weights, alpha):
        policy = self.networks.policy_logits(params, latents)
        data_bins = discretization.action_to_bin(batch.action, self.networks.config.num_action_bins)
        num_bins = self.networks.config.num_action_bins
        # The loss uses the smoothed target; bc_loss stays the NLL of the data's own bin (the
        # held-out quantity the scaling laws fit, comparable across settings).
        std_bins = self.hyperparams.policy_target_std * (num_bins - 1) / 2.0
        log_prob_data = losses.action_log_prob(policy, data_bins, batch.action_mask)
        target_data = losses.smoothed_action_log_prob(policy, data_bins, batch.action_mask, std_bins)
        if self.hyperparams.policy_improvement == "data_advantage":
            loss = jnp.mean(losses.advantage_weighted_policy_loss(target_data, weights, alpha))
        else:
            target_samples = losses.smoothed_action_log_prob(policy, sampled_bins, batch.action_mask, std_bins)
            loss = jnp.mean(losses.policy_loss(target_data, target_samples, weights, alpha))
        return loss, {"bc_loss": -jnp.mean(log_prob_data), "policy_loss": loss}

    def _improvement(self, sampled_q, temperature, batch: Batch):
        """The improvement weights, the values the stepped temperature dual is fitted on, and
        the temperature the weights used.

        'sampled': weights [B, N] over the policy's samples of each state (MPO), softmax_j(Q
        / eta) with the stepped dual's eta. 'data_advantage': one weight per example [B],
        B * softmax over the batch of the data action's advantage A / eta (mean weight 1),
        eta solved per batch so that the weights lie advantage_kl_epsilon from uniform.
        """
        cfg = self.hyperparams
        if cfg.policy_improvement == "data_advantage":
            baseline = jnp.mean(sampled_q[:, :cfg.num_sampled_actions], axis=-1)
            value = sampled_q[:, -1] if cfg.advantage_estimate == "critic" else batch.mc_return
            # Standardized within each task of the batch: tasks' returns differ in scale, and
            # one softmax over raw advantages would hand the whole batch to the noisiest task.
            num_tasks = self.networks.config.num_tasks
            if cfg.advantage_baseline == "calibrated":
                residual = losses.calibrated_residual(value, baseline, batch.task_id, num_tasks)
            else:
                residual = value - baseline
            advantage = losses.standardize_per_task(jax.lax.stop_gradient(residual), batch.task_id, num_tasks)
            eta = losses.temperature_for_kl(advantage, cfg.advantage_kl_epsilon)
            weights = jax.nn.softmax(advantage / eta) * advantage.shape[0]
            return weights, sampled_q[:, :cfg.num_sampled_actions], eta
        return losses.improvement_weights(sampled_q, temperature), sampled_q, temperature

    def _critic_loss(self, params, latents, batch: Batch, target_probs):
        q_logits = self.networks.q_logits(params, latents, batch.action[:, None, :], batch.action_mask)[:, 0]
        loss = jnp.mean(losses.critic_loss(q_logits, target_probs))
        return loss, {"critic_loss": loss, "q_data": discretization.categorical_mean(q_logits, self.support)}

    def _losses_and_grads(self, params, target_params, temperature, batch: Batch, key, alpha, with_grads: bool):
        """Losses, diagnostics and (with_grads) the gradient to apply, before any global clip.

        The encoder runs forward once. Each loss is differentiated through its own decoder
        to the params and to the shared latents, which gives the per-loss gradient norms
        cheaply. 'global' clipping then runs one encoder backward on the summed latent
        gradients; 'per_loss' runs it once per loss (2 x encoder forward FLOPs more), so
        that each loss's whole gradient can be clipped on its own before the sum.
        """
        cfg = self.hyperparams
        sampled_bins, sampled_q, target_probs = self._target_passes(target_params, batch, key)
        weights, dual_values, used_temperature = self._improvement(sampled_q, temperature, batch)
        policy_fn = lambda p, z: self._policy_loss(p, z, batch, sampled_bins, weights, alpha)  # noqa: E731
        critic_fn = lambda p, z: self._critic_loss(p, z, batch, target_probs)  # noqa: E731
        grads, grad_metrics = None, {}
        if with_grads:
            latents, encoder_vjp = jax.vjp(lambda p: self.networks.encode(p, _inputs(batch)), params)
            grad_fn = lambda f: jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, latents)  # noqa: E731
            (policy_loss, policy_logs), (policy_grads, policy_latent_grads) = grad_fn(policy_fn)
            (critic_loss, critic_logs), (critic_grads, critic_latent_grads) = grad_fn(critic_fn)
            encoder_grads = lambda g: encoder_vjp(g)[0]  # noqa: E731
            add = lambda *trees: jax.tree.map(lambda *x: sum(x), *trees)  # noqa: E731
            grad_metrics = {
                # Each loss's pull on its own decoder and on the shared trunk (the latents):
                # which loss sets the encoder's step.
                "policy_grad_norm": optax.tree.norm(policy_grads),
                "critic_grad_norm": optax.tree.norm(critic_grads),
                "policy_trunk_grad_norm": optax.tree.norm(policy_latent_grads),
                "critic_trunk_grad_norm": optax.tree.norm(critic_latent_grads),
            }
            if cfg.gradient_clipping == "per_loss":
                policy_grads = add(policy_grads, encoder_grads(policy_latent_grads))
                critic_grads = add(critic_grads, encoder_grads(critic_latent_grads))
                policy_scale = _clip_scale(optax.tree.norm(policy_grads), cfg.policy_max_grad_norm)
                critic_scale = _clip_scale(optax.tree.norm(critic_grads), cfg.critic_max_grad_norm)
                grads = jax.tree.map(lambda p, c: policy_scale * p + critic_scale * c, policy_grads, critic_grads)
            else:
                grads = add(policy_grads, critic_grads, encoder_grads(add(policy_latent_grads, critic_latent_grads)))
        else:
            latents = self.networks.encode(params, _inputs(batch))
            (policy_loss, policy_logs), (critic_loss, critic_logs) = policy_fn(params, latents), critic_fn(params, latents)
        q_data = critic_logs.pop("q_data")
        batch_weights = weights[None, :] / weights.shape[0] if weights.ndim == 1 else weights
        metrics = {
            "loss": policy_loss + critic_loss,
            **policy_logs,
            **critic_logs,
            "q_mean": jnp.mean(q_data),
            "temperature": used_temperature,
            "kl_improvement": jnp.mean(losses.kl_to_samples(batch_weights)),
            **diagnostics.critic_and_weight_diagnostics(sampled_q[:, :self.hyperparams.num_sampled_actions],
                                                        batch_weights, q_data, getattr(batch, "mc_return", None)),
            **diagnostics.advantage_diagnostics(sampled_q, self.hyperparams.num_sampled_actions,
                                                getattr(batch, "mc_return", None)),
            **grad_metrics,
        }
        return metrics, dual_values, grads

    def _sampled_chunk(self, state: TrainingState, data: SplitArrays, constants: RunConstants, length: jax.Array):
        """`length` (>= 1) updates, each on a batch drawn on the device from `data` (a split
        placed there once, see `place_data`): batch k is a pure function of (seed, k), so a
        resumed run sees the same batches. The length is an argument of one compiled loop,
        not a shape: chunks of any length share one program. Returns the metrics of the
        chunk's last update."""
        batch_size = self.hyperparams.batch_size

        def batch_at(step):
            # The data's stream is apart from the update's (which folds the step into the seed).
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(constants.seed), _DATA_STREAM), step)
            return jax.lax.with_sharding_constraint(device_sampler.sample(data, key, batch_size), self.batch_sharding)

        def update(_, carry):
            state, _ = carry
            return self._update(state, batch_at(state.step), constants)

        metrics = jax.eval_shape(lambda s: self._update(s, batch_at(s.step), constants)[1], state)
        zeros = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)
        return jax.lax.fori_loop(0, length, update, (state, zeros))

    def _update_chunk(self, state: TrainingState, batches: Batch, constants: RunConstants):
        return jax.lax.scan(lambda s, b: self._update(s, b, constants), state, batches)

    def _update(self, state: TrainingState, batch: Batch, constants: RunConstants) -> tuple[TrainingState, dict[str, Any]]:
        cfg = self.hyperparams
        key = jax.random.fold_in(jax.random.key(constants.seed), state.step)
        temperature = jnp.exp(state.log_temperature)
        metrics, dual_values, grads = self._losses_and_grads(
            state.params, state.target_params, temperature, batch, key, constants.alpha, with_grads=True)

        grad_norm = optax.tree.norm(grads)
        if cfg.gradient_clipping == "global":
            grads = jax.tree.map(lambda g: g * _clip_scale(grad_norm, cfg.max_grad_norm), grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        learning_rate = learning_rate_at(state.step, constants, cfg)
        updates = jax.tree.map(lambda u: learning_rate * u, updates)
        params = optax.apply_updates(state.params, updates)

        dual, temperature_grad = jax.value_and_grad(
            lambda log_t: losses.temperature_dual_loss(jnp.exp(log_t), dual_values, cfg.kl_epsilon))(state.log_temperature)
        temperature_update, temperature_opt_state = self._temperature_optimizer.update(
            temperature_grad, state.temperature_opt_state)
        # MPO keeps eta above a floor: as Q's spread over the sampled actions shrinks the
        # dual drives eta toward 0, and the weights then follow the critic's noise.
        log_temperature = jnp.maximum(optax.apply_updates(state.log_temperature, temperature_update),
                                      jnp.log(cfg.min_temperature))

        step = state.step + 1
        target_params = self._next_target_params(params, state.target_params, step)
        metrics.update(
            temperature_dual=dual,
            grad_norm=grad_norm,
            learning_rate=learning_rate,
        )
        return TrainingState(params, target_params, opt_state, log_temperature, temperature_opt_state, step), metrics

    def _next_target_params(self, params: hk.Params, target_params: hk.Params, step: jax.Array) -> hk.Params:
        cfg = self.hyperparams
        if cfg.target_update == "polyak":
            tau = cfg.polyak_tau
            return jax.tree.map(lambda new, old: (1.0 - tau) * old + tau * new, params, target_params)
        refresh = step % cfg.target_update_period == 0
        return jax.tree.map(lambda new, old: jnp.where(refresh, new, old), params, target_params)

    def _validation_metrics(self, state: TrainingState, batch: Batch, constants: RunConstants) -> dict[str, Any]:
        key = jax.random.fold_in(jax.random.key(constants.seed + 1), 0)
        metrics, _, _ = self._losses_and_grads(state.params, state.target_params, jnp.exp(state.log_temperature),
                                                  batch, key, constants.alpha, with_grads=False)
        return metrics


def _clip_scale(norm: jax.Array, max_norm: float) -> jax.Array:
    """The factor that brings a gradient of `norm` down to at most `max_norm` (1 if below)."""
    return jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
