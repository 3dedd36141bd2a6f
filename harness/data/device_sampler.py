"""Batches drawn inside the jitted program from a split that lives on the device.

`Sampler.split_arrays()` gives one split's arrays (observations already normalized and
padded); placed on the device once, `sample(arrays, key, batch_size)` draws a batch as
the host `Sampler` does (a task by the split's task weighting, then a transition of it)
with jax.random, so a training chunk of K updates needs no host work at all. Batch k of a
run is a pure function of (seed, k) here too: a resumed run sees the batches it would
have seen.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from harness.data.sampler import Batch, SplitArrays, gather


def sample(arrays: SplitArrays, key: jax.Array, batch_size: int) -> Batch:
    """One batch of `batch_size` transitions of the split (with replacement)."""
    task_key, position_key = jax.random.split(key)
    # Task first (log of the task weights; tasks whose split is empty have weight 0),
    # then a uniform position inside that task's slice of the split.
    task = jax.random.categorical(task_key, jnp.log(arrays.task_weights), shape=(batch_size,))
    offset = jnp.floor(jax.random.uniform(position_key, (batch_size,)) * arrays.split_sizes[task]).astype(jnp.int32)
    position = arrays.split_starts[task] + jnp.minimum(offset, arrays.split_sizes[task] - 1)
    if arrays.alias_keep is not None:
        # A weighted draw inside the task (Sampler's sample_weighting): Walker's alias step.
        # Its own key, the third of split(key, 3): reusing the position key (fold_in(key, 1)
        # is split's second key) correlates the kept draw with the position and biases it.
        alias_key = jax.random.split(key, 3)[2]
        keep = jax.random.uniform(alias_key, (batch_size,)) < arrays.alias_keep[position]
        position = jnp.where(keep, position, arrays.alias_other[position])
    return gather(arrays, position, task.astype(jnp.int32))
