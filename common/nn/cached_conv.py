"""Caches for causal (dilated) convolutions: the part of fast autoregressive generation that is not model-specific.

Fast WaveNet (Paine et al. 2016) and Fast PixelCNN++ (Ramachandran et al. 2017) both replace "rerun the network
over its receptive field for every new sample" by "keep each layer's past inputs and compute one new position".
A causal conv of width k and dilation d needs, at step t, its inputs x[t - (k-1)d], ..., x[t - d], x[t]. The
k - 1 past ones live in a ring buffer of (k-1)d rows per layer: input t is written at row t mod (k-1)d, and the tap
x[t - jd] is read back from row (t - jd) mod (k-1)d. Rows start as zeros, which is exactly the left zero padding
of the same causal conv run over a whole sequence, so the cached step is the full network's computation, not an
approximation of it.

Layout: the rings of a stack of layers with the same channel count share one buffer [slots, batch, channels]
(`RingLayout`), layer l owning rows offsets[l] .. offsets[l] + lengths[l]. Every tap of every layer is already
known when a step starts, so a step can read all of them at once (`read_slots`, one gather) and write all
layers' current inputs at its end (`write_slots`, one scatter): two memory operations per step, whatever the
depth (kernels/cached_dilated_conv does the reads, the layers and the writes).
A 2-D cache (PixelCNN's rows of a filter height, Fast PixelCNN++) is the same buffer with rows of width
`image width` instead of 1; what changes is only which rows a step reads and writes.

`sample_autoregressively` is the compiled loop shared by every cached (or naive) generator: one `lax.scan`
over time, sampling from the softmax with noise drawn up front (per step, from the key and the step index), so
two generators given the same key see the same noise and, given the same logits, pick the same samples.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class RingLayout:
    """Where each layer's past inputs live in a shared cache [num_slots, batch, channels].

    dilations: one per layer (>= 1); kernel_size: the conv width k (>= 2; a width-1 conv needs no cache).
    """

    dilations: tuple[int, ...]
    kernel_size: int

    def __post_init__(self):
        if self.kernel_size < 2:
            raise ValueError(f"kernel_size must be >= 2 for a cached causal conv, got {self.kernel_size}")
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"dilations must be a non-empty sequence of integers >= 1, got {self.dilations}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    @property
    def num_layers(self) -> int:
        return len(self.dilations)

    @property
    def lengths(self) -> np.ndarray:
        """[L] rows per layer: (k-1) * d, the span of the layer's past taps."""
        return (self.kernel_size - 1) * np.asarray(self.dilations, np.int32)

    @property
    def offsets(self) -> np.ndarray:
        """[L] first row of each layer's ring."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int32)

    @property
    def num_slots(self) -> int:
        return int(self.lengths.sum())

    @property
    def receptive_field(self) -> int:
        """Inputs the last layer's output depends on: 1 + (k-1) * sum(dilations)."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def read_slots(self, step: jax.Array) -> jax.Array:
        """int32 [L, k-1]: rows holding x[step - jd] for j = k-1, ..., 1 (oldest tap first)."""
        taps = np.arange(self.kernel_size - 1, 0, -1, dtype=np.int32)  # j = k-1 .. 1
        back = taps[None, :] * np.asarray(self.dilations, np.int32)[:, None]  # [L, k-1]
        lengths = self.lengths[:, None]
        return self.offsets[:, None] + jnp.mod(step - back, lengths).astype(jnp.int32)

    def write_slots(self, step: jax.Array) -> jax.Array:
        """int32 [L]: the row where each layer stores its current input x[step]."""
        return self.offsets + jnp.mod(step, self.lengths).astype(jnp.int32)


def init_cache(layout: RingLayout, batch: int, channels: int, dtype=jnp.float32) -> jax.Array:
    """All-zero cache [num_slots, batch, channels]: the causal zero padding before the first sample."""
    return jnp.zeros((layout.num_slots, batch, channels), dtype)


def split_causal_kernel(kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A causal conv kernel [k, Cin, Cout] (tap k-1 is the current input) -> (past [(k-1)*Cin, Cout] with the
    oldest tap's rows first, as `RingLayout.read_slots` orders the taps, and current [Cin, Cout])."""
    width, in_channels, out_channels = kernel.shape
    return kernel[:-1].reshape((width - 1) * in_channels, out_channels), kernel[-1]


def sample_codes(logits: jax.Array, gumbel_noise: jax.Array, temperature: float) -> jax.Array:
    """One draw per row from softmax(logits / temperature): logits, gumbel_noise [B, K] -> int32 [B].

    The Gumbel-max trick, so the randomness is an input (drawn once for all steps). temperature 0: greedy.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jnp.argmax(logits / temperature + gumbel_noise, axis=-1).astype(jnp.int32)


StepFn = Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]]


def sample_autoregressively(
    step_fn: StepFn,
    state: Any,
    first_codes: jax.Array,
    *,
    num_steps: int,
    num_classes: int,
    key: jax.Array,
    temperature: float = 1.0,
    unroll: int = 1,
) -> tuple[jax.Array, jax.Array]:
    """The generation loop, one `lax.scan` over time (call it under jit).

    step_fn(state, codes [B] int32, step int32) -> (state, logits [B, K]) predicts the code after `codes`.
    first_codes int32 [B]: the input of step 0. Returns (samples int32 [num_steps, B], logits [num_steps, B, K]).
    The noise of step t is `gumbel(fold_in(key, t), [B, K])`, drawn for all steps before the loop: a run of n
    steps sees the first n steps' noise of any longer run with the same key.
    """
    batch = first_codes.shape[0]
    steps = jnp.arange(num_steps, dtype=jnp.int32)
    noise = jax.vmap(lambda t: jax.random.gumbel(jax.random.fold_in(key, t), (batch, num_classes)))(steps)

    def body(carry, inputs):
        state, codes = carry
        step, step_noise = inputs
        state, logits = step_fn(state, codes, step)
        samples = sample_codes(logits.astype(jnp.float32), step_noise, temperature)
        return (state, samples), (samples, logits)

    _, (samples, logits) = jax.lax.scan(body, (state, first_codes.astype(jnp.int32)), (steps, noise), unroll=unroll)
    return samples, logits
