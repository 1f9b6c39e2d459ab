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

Images (Fast PixelCNN++) generate in raster order and their convs read 2-D windows, so they get two 2-D caches
with the same zero start, position-major ([..., W, B, C]: what one position reads or writes is one contiguous
[B, C] block whatever the batch):
  row cache   a vertical-stream conv of height 2 (down-shifted) runs once per row and needs its input's previous
              row [W, B, C] (`row_cache_conv`); the new row replaces it after use.
  pixel ring  a horizontal-stream 2 x 2 conv (down-right-shifted) runs once per pixel and needs columns c - 1, c of
              the previous and the current row: 2 rows [2, W + 1, B, C], row r in slot r % 2, one zero column on the
              left (`pixel_ring_write`, `pixel_ring_window`, `window_conv`). A stack of such convs keeps its
              rings in one [slots, B, C] cache (`PixelRingLayout`) and runs as one step of the same conv-stack
              kernel as WaveNet's rings: a 2-D window is three cache rows (past taps) and the current input.
A strided conv keeps the same cache of its input as a stride-1 conv and runs only at every `every`-th position
(`run_every`), the paper's run_every; a transposed conv runs when its input is computed and its outputs are
cached until the finer positions read them (the paper's cache_every).

`generate_in_raster_order` is the compiled loop every generator runs (cached or naive, WaveNet or PixelCNN++):
positions in raster order (a sequence is one column), a step computing the distribution's parameters, a sampling
hook drawing from them with position t's noise (`sample_codes` for WaveNet's categorical codes, the logistic
mixture channel by channel for PixelCNN++) and a feed storing the sample where later steps read it. Noise is a
function of (key, position) only, so two generators given the same key and the same parameters draw the same
samples.
"""

import dataclasses
import functools
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


def tap_weights(kernel: jax.Array, groups: int = 1) -> tuple[jax.Array, jax.Array]:
    """A causal conv kernel [*taps, Cin, Cout] whose last tap in raster order is the current input (WaveNet's
    [k, Cin, Cout], a down-right [2, 2, Cin, Cout]) -> (past [G, R, (T-1)*Cin], the earlier taps in raster order,
    oldest first, as the layouts' read_slots order them; current [G, R, Cin]): the cached step's layout
    (kernels/cached_dilated_conv), one [outputs, inputs] slab per group of R = Cout / G outputs."""
    in_channels, out_channels = kernel.shape[-2:]
    taps = kernel.reshape(-1, in_channels, out_channels)

    def grouped(matrix):  # [inputs, G*R] -> [G, R, inputs]
        return matrix.reshape(matrix.shape[0], groups, out_channels // groups).transpose(1, 2, 0)

    return grouped(taps[:-1].reshape(-1, out_channels)), grouped(taps[-1])


def sample_codes(logits: jax.Array, gumbel_noise: jax.Array, temperature: float) -> jax.Array:
    """One draw per row from softmax(logits / temperature): logits, gumbel_noise [B, K] -> int32 [B].

    The Gumbel-max trick, so the randomness is an input (drawn once for all steps). temperature 0: greedy.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jnp.argmax(logits / temperature + gumbel_noise, axis=-1).astype(jnp.int32)


# ----- 2-D caches (images in raster order) ---------------------------------------------------------------------

ConvWeights = dict  # {"kernel": [kh, kw, in, out], "bias": [out]}


def valid_conv_at_row(conv: ConvWeights, window: jax.Array, *, stride: int = 1) -> jax.Array:
    """A VALID conv at one output row as one matmul per tap: window [kh, Wp, B, C] (its input rows, padded) ->
    [(Wp - kw) / stride + 1, B, F]. Position-major rows make every tap a contiguous slice (a gathered copy of the
    taps costs 3x the matmuls at batch 256)."""
    kh, kw, _, _ = conv["kernel"].shape
    width = (window.shape[1] - kw) // stride + 1
    out = conv["bias"]
    for dh in range(kh):
        for dw in range(kw):
            out = out + window[dh, dw : dw + stride * (width - 1) + 1 : stride] @ conv["kernel"][dh, dw]
    return out


def row_cache_conv(conv: ConvWeights, previous: jax.Array, current: jax.Array, *, stride: int = 1) -> jax.Array:
    """A down-shifted conv (height 2, odd width, centred) at one output row from its row cache: input rows r - 1
    (`previous`, zeros above the image) and r, each [W, B, C] -> [W / stride, B, F]. With stride 2 it is the
    strided conv's output row r / 2 (run on even rows only: `run_every`)."""
    half = (conv["kernel"].shape[1] - 1) // 2
    window = jnp.pad(jnp.stack([previous, current]), ((0, 0), (half, half), (0, 0), (0, 0)))  # [2, W + 2h, B, C]
    return valid_conv_at_row(conv, window, stride=stride)


def init_pixel_ring(width: int, batch: int, channels: int, dtype=jnp.float32) -> jax.Array:
    """All-zero pixel ring [2, W + 1, B, C]: the top and left zero padding."""
    return jnp.zeros((2, width + 1, batch, channels), dtype)


@dataclasses.dataclass(frozen=True)
class PixelRingLayout:
    """The pixel rings of a stack of down-right 2 x 2 convs in one shared cache [num_slots, B, C], for the cached
    step kernel: conv v of layer l owns 2 * (W + 1) rows from (l * convs_per_layer + v) * 2 * (W + 1), laid out as
    `init_pixel_ring`'s [2, W + 1] (row r in ring row r % 2, column c in ring column c + 1; ring column 0 is the
    left zero padding and is never written)."""

    width: int
    num_layers: int
    convs_per_layer: int = 1

    @property
    def num_slots(self) -> int:
        return self.num_layers * self.convs_per_layer * 2 * (self.width + 1)

    def _ring_rows(self, ring_row: jax.Array, ring_col: jax.Array) -> jax.Array:
        """[L, convs] cache rows of (ring_row, ring_col) in every conv's ring."""
        starts = np.arange(self.num_layers * self.convs_per_layer, dtype=np.int32) * 2 * (self.width + 1)
        return (starts + ring_row * (self.width + 1) + ring_col).reshape(self.num_layers, self.convs_per_layer)

    def read_slots(self, row: jax.Array, col: jax.Array) -> jax.Array:
        """int32 [L, convs * 3]: each conv's past taps at (row, col), in the 2 x 2 kernel's raster order: (row - 1,
        col - 1), (row - 1, col), (row, col - 1); zero rows where they fall outside the image."""
        above, here = (row + 1) % 2, row % 2
        taps = [self._ring_rows(above, col), self._ring_rows(above, col + 1), self._ring_rows(here, col)]
        return jnp.stack(taps, axis=-1).reshape(self.num_layers, -1).astype(jnp.int32)

    def write_slots(self, row: jax.Array, col: jax.Array) -> jax.Array:
        """int32 [L] ([L, convs] for two or more convs per layer): where each conv stores its input at (row, col)."""
        rows = self._ring_rows(row % 2, col + 1).astype(jnp.int32)
        return rows[:, 0] if self.convs_per_layer == 1 else rows


def pixel_ring_write(ring: jax.Array, row: jax.Array, col: jax.Array, value: jax.Array) -> jax.Array:
    """Stores input (row, col) [B, C] in the ring [2, W + 1, B, C] (slot row % 2, column col + 1)."""
    return jax.lax.dynamic_update_slice(ring, value[None, None], (row % 2, col + 1, 0, 0))


def pixel_ring_window(ring: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
    """The 2 x 2 window a down-right conv reads at (row, col): inputs (row - 1 .. row, col - 1 .. col)
    [2, 2, B, C], zeros where they fall outside the image."""
    _, _, batch, channels = ring.shape
    above = jax.lax.dynamic_slice(ring, ((row + 1) % 2, col, 0, 0), (1, 2, batch, channels))
    here = jax.lax.dynamic_slice(ring, (row % 2, col, 0, 0), (1, 2, batch, channels))
    return jnp.concatenate([above, here], axis=0)


def window_conv(conv: ConvWeights, window: jax.Array) -> jax.Array:
    """A conv at one output position from its whole input window [kh, kw, B, C] -> [B, F] (stride plays no part
    here), as one [B, kh * kw * C] matmul."""
    batch = window.shape[2]
    kernel = conv["kernel"]
    return window.transpose(2, 0, 1, 3).reshape(batch, -1) @ kernel.reshape(-1, kernel.shape[-1]) + conv["bias"]


def run_every(every: int, run: Callable[[Any], Any], state: Any, *indices: jax.Array) -> Any:
    """`run(state)` where every index (the row; the row and the column) is a multiple of `every`, else `state`
    unchanged: a strided conv, and everything coarser behind it, runs at its own positions only."""
    here = functools.reduce(jnp.logical_and, [index % every == 0 for index in indices])
    return jax.lax.cond(here, run, lambda state: state, state)


# ----- the generation loop ------------------------------------------------------------------------------------

PositionFn = Callable[[Any, jax.Array, jax.Array], tuple[Any, Any]]  # (state, row, col) -> (state, params)
SampleFn = Callable[[Any, jax.Array], Any]  # (params, position) -> sample: the sampling hook
FeedFn = Callable[[Any, jax.Array, jax.Array, Any], Any]  # (state, row, col, sample) -> state


def generate_in_raster_order(
    step_fn: PositionFn,
    sample_fn: SampleFn,
    feed_fn: FeedFn,
    state: Any,
    *,
    num_positions: int,
    width: int = 1,
    row_fn: Callable[[Any, jax.Array], Any] | None = None,
    unroll: int = 1,
) -> tuple[Any, Any]:
    """The compiled generation loop (call it under jit): positions t = 0 .. num_positions - 1 at row t // width,
    column t % width (width 1: a sequence, row = t).

    At each position step_fn computes the distribution's parameters, sample_fn draws the sample from them (with
    position t's noise) and feed_fn stores it where later steps read it. row_fn(state, row) -> state, when given,
    runs once before each row's positions (a vertical stream's row): the loop is then a scan over rows around a
    scan over the row's columns, and the last started row is run to its end. Returns (samples, params), each a
    pytree stacked over the first num_positions positions [num_positions, ...].
    """

    def position(state, row, col):
        state, params = step_fn(state, row, col)
        sample = sample_fn(params, row * width + col)
        return feed_fn(state, row, col, sample), (sample, params)

    if row_fn is None:
        steps = jnp.arange(num_positions, dtype=jnp.int32)
        _, outputs = jax.lax.scan(lambda state, t: position(state, t // width, t % width), state, steps, unroll=unroll)
        return outputs

    def row_step(state, row):
        state = row_fn(state, row)
        columns = jnp.arange(width, dtype=jnp.int32)
        return jax.lax.scan(lambda state, col: position(state, row, col), state, columns, unroll=unroll)

    rows = jnp.arange(-(-num_positions // width), dtype=jnp.int32)
    _, outputs = jax.lax.scan(row_step, state, rows)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:num_positions], outputs)


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
    """A sequence of categorical codes (WaveNet) through `generate_in_raster_order` (call it under jit).

    step_fn(state, codes [B] int32, step int32) -> (state, logits [B, K]) predicts the code after `codes`.
    first_codes int32 [B]: the input of step 0. Returns (samples int32 [num_steps, B], logits [num_steps, B, K]).
    The noise of step t is `gumbel(fold_in(key, t), [B, K])`, drawn inside the loop: a run of n steps sees the
    first n steps' noise of any longer run with the same key. (Drawn for all steps before the loop it took another
    [num_steps, B, K] beside the returned logits, 1 GB for 4,000 steps at batch 256, and measured no faster.)
    """
    batch = first_codes.shape[0]

    def step(carry, row, col):
        del col  # a sequence is one column
        state, codes = carry
        state, logits = step_fn(state, codes, row)
        return (state, codes), logits

    def sample(logits, t):
        noise = jax.random.gumbel(jax.random.fold_in(key, t), (batch, num_classes))
        return sample_codes(logits.astype(jnp.float32), noise, temperature)

    def feed(carry, row, col, codes):
        return carry[0], codes

    carry = (state, first_codes.astype(jnp.int32))
    return generate_in_raster_order(step, sample, feed, carry, num_positions=num_steps, unroll=unroll)
