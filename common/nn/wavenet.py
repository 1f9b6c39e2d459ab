"""WaveNet (van den Oord et al. 2016) and its generation: naive (the reference) and cached (Fast WaveNet).

Model, on mu-law codes [B, T] (int, 0..num_classes-1):
  embed (a 1x1 conv on the one-hot input) -> L dilated causal conv layers of width k >= 2 -> head -> logits.
  activation "gated" (WaveNet): a = conv(x) (+ speaker conditioning); z = tanh(a_f) * sigmoid(a_g);
      x <- x + residual_1x1(z); skip += skip_1x1(z); head: ReLU -> 1x1 -> ReLU -> 1x1 over the skip sum.
  activation "relu" (the Fast WaveNet demo: no gating, no skips): x <- relu(conv(x)); head: one 1x1 to logits.
  Global conditioning: a speaker embedding, projected per layer (no bias), added to the gate pre-activations.
Every conv pads with zeros on the left (causal), so output t sees inputs t - receptive_field + 1 .. t.

Generation (`generate`, one compiled `lax.scan` over time, batched, same key -> same noise in both methods):
  naive   reruns the model on the last receptive_field codes at every step: O(2^L) work per sample for
          dilations 1, 2, 4, ... Positions before the first sample are masked to zero at every layer's input,
          which is the causal zero padding the cached method's zero-initialised caches hold.
  fast    keeps every layer's past inputs in ring buffers (common/nn/cached_conv.py) and computes one position
          per step: O(L) work per sample. impl "fused" is this module's step in plain XLA (per layer one product
          for the dilated taps and the current input, one for residual and skip; the CPU's default), "xla" and
          "pallas" the stack step of kernels/cached_dilated_conv; "auto": the Pallas kernel on TPU, elsewhere the
          stack step at batch 1 and "fused" above (resolve_fast_impl).
Both return the samples and the logits of every step, so the two can be compared exactly.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from common.compat import List
from common.nn import cached_conv
from common.registry import lookup
from kernels.backend import IMPLEMENTATIONS, resolve_impl
from kernels.cached_dilated_conv import (
    StackWeights,
    auto_takes_kernel,
    cached_dilated_conv_step,
    preferred_batch,
    project,
)
from kernels.cached_dilated_conv.reference import read_rows  # stacked dynamic slices: one copy of the rows

ACTIVATIONS = ("gated", "relu")  # each a cell of the cached step (kernels/cached_dilated_conv CELLS) of that name


def doubling_dilations(num_blocks: int, layers_per_block: int) -> tuple[int, ...]:
    """1, 2, 4, ..., 2^(layers_per_block - 1), repeated num_blocks times (WaveNet's and Fast WaveNet's stacks)."""
    return tuple(2**i for i in range(layers_per_block)) * num_blocks


class WaveNet(nnx.Module):
    """Logits over the next code at every position: codes [B, T] -> [B, T, num_classes]."""

    def __init__(
        self,
        *,
        dilations: tuple[int, ...],
        residual_channels: int,
        skip_channels: int | None = None,
        kernel_size: int = 2,
        activation: str = "gated",
        num_classes: int = 256,
        num_speakers: int = 0,
        speaker_features: int = 16,
        rngs: nnx.Rngs,
    ):
        lookup({name: name for name in ACTIVATIONS}, activation, "activation")
        if activation == "gated" and not skip_channels:
            raise ValueError("a gated WaveNet needs skip_channels >= 1")
        self.ring = cached_conv.RingLayout(tuple(dilations), kernel_size)  # validates dilations and kernel_size
        self.activation = activation
        self.num_classes = num_classes
        self.num_speakers = num_speakers
        self.channels = residual_channels
        groups = 2 if activation == "gated" else 1
        c = residual_channels
        self.embed = nnx.Embed(num_classes, c, rngs=rngs)
        # Causal: (K - 1) * d zeros on the left only. A tuple, not a list: Flax 0.12 keeps it in the graph
        # definition, which jit hashes.
        self.convs = List(
            [
                nnx.Conv(
                    c,
                    groups * c,
                    (kernel_size,),
                    kernel_dilation=(d,),
                    padding=(((kernel_size - 1) * d, 0),),
                    rngs=rngs,
                )
                for d in self.ring.dilations
            ]
        )
        if num_speakers:
            self.speaker_embed = nnx.Embed(num_speakers, speaker_features, rngs=rngs)
            self.conditions = List(
                [nnx.Linear(speaker_features, groups * c, use_bias=False, rngs=rngs) for _ in self.convs]
            )
        if activation == "gated":
            # the last layer's residual would feed nothing
            self.residuals = List([nnx.Linear(c, c, rngs=rngs) for _ in self.convs[:-1]])
            self.skips = List([nnx.Linear(c, skip_channels, rngs=rngs) for _ in self.convs])
            self.head_hidden = nnx.Linear(skip_channels, skip_channels, rngs=rngs)
            self.head_out = nnx.Linear(skip_channels, num_classes, rngs=rngs)
        else:
            self.head_out = nnx.Linear(c, num_classes, rngs=rngs)

    @property
    def receptive_field(self) -> int:
        return self.ring.receptive_field

    def head(self, features: jax.Array, linear=None) -> jax.Array:
        """[..., S] skip sum (gated) or [..., C] last layer output (relu) -> logits [..., num_classes].

        linear(layer, x) applies one of the head's nnx.Linear layers (default: the layer itself).
        """
        linear = linear or (lambda layer, x: layer(x))
        if self.activation == "gated":
            features = jax.nn.relu(linear(self.head_hidden, jax.nn.relu(features)))
        return linear(self.head_out, features)

    def speaker_biases(self, speaker: jax.Array | None, batch: int) -> list[jax.Array] | None:
        """Per layer [B, G*C] additions to the conv output from the speaker ids [B], or None (no conditioning)."""
        if not self.num_speakers:
            if speaker is not None:
                raise ValueError("this WaveNet has no speaker conditioning (num_speakers=0); pass speaker=None")
            return None
        if speaker is None or speaker.shape != (batch,):
            got = None if speaker is None else speaker.shape
            raise ValueError(f"speaker must be int [{batch}] (ids < {self.num_speakers}), got {got}")
        embedding = self.speaker_embed(speaker)
        return [condition(embedding) for condition in self.conditions]

    def __call__(self, codes: jax.Array, speaker: jax.Array | None = None, valid: jax.Array | None = None):
        """codes int [B, T], speaker int [B] or None, valid bool [T] or None (False: a position before the
        sequence starts, zeroed at every layer's input like causal padding) -> logits [B, T, num_classes]."""
        if codes.ndim != 2:
            raise ValueError(f"codes must be [batch, time] integers, got shape {codes.shape}")
        x = self.embed(codes.astype(jnp.int32))
        mask = None if valid is None else valid[..., None].astype(x.dtype)
        biases = self.speaker_biases(speaker, codes.shape[0])
        skip = 0.0
        c = self.channels
        for layer, conv in enumerate(self.convs):
            a = conv(x if mask is None else x * mask)
            if biases is not None:
                a = a + biases[layer][:, None, :]
            if self.activation == "relu":
                x = jax.nn.relu(a)
                continue
            z = jnp.tanh(a[..., :c]) * jax.nn.sigmoid(a[..., c:])
            skip = skip + self.skips[layer](z)
            if layer < len(self.residuals):
                x = x + self.residuals[layer](z)
        return self.head(skip if self.activation == "gated" else x)


# ----------------------------------------------------------------------------------------- cached-step weights


def stack_weights(model: WaveNet) -> StackWeights:
    """The model's conv stack in the layout of kernels/cached_dilated_conv (past taps, current tap, groups)."""
    groups = 2 if model.activation == "gated" else 1
    past, current, bias = [], [], []
    for conv in model.convs:
        conv_past, conv_current = cached_conv.tap_weights(conv.kernel.value, groups)
        past.append(conv_past)
        current.append(conv_current)
        bias.append(conv.bias.value.reshape(groups, -1))
    weights = StackWeights(past=jnp.stack(past), current=jnp.stack(current), bias=jnp.stack(bias))
    if model.activation == "relu":
        return weights
    residual = [layer.kernel.value.T for layer in model.residuals]
    residual_bias = [layer.bias.value for layer in model.residuals]
    residual.append(jnp.zeros_like(residual[0]) if residual else jnp.zeros((model.channels,) * 2))
    residual_bias.append(jnp.zeros((model.channels,)))
    return weights._replace(
        residual=jnp.stack(residual),
        residual_bias=jnp.stack(residual_bias),
        skip=jnp.concatenate([layer.kernel.value for layer in model.skips]).T,  # [S, L*R]
        skip_bias=sum(layer.bias.value for layer in model.skips),
    )


def stack_gate_bias(model: WaveNet, speaker: jax.Array | None, batch: int) -> jax.Array | None:
    """[L, G, B, R] speaker conditioning of every layer (constant over a generated sequence), or None."""
    biases = model.speaker_biases(speaker, batch)
    if biases is None:
        return None
    groups = 2 if model.activation == "gated" else 1
    return jnp.stack([b.reshape(batch, groups, -1).transpose(1, 0, 2) for b in biases])


# ------------------------------------------------------------------------------------------------- generation


def _fast_stepper(model: WaveNet, batch: int, speaker, impl: str):
    """(step_fn, initial cache) for cached generation: one position of every layer per step."""
    weights = stack_weights(model)
    gate_bias = stack_gate_bias(model, speaker, batch)
    embedding = model.embed.embedding.value
    ring = model.ring
    # The head's kernels as [outputs, inputs] for the small-batch product, transposed once here, not every step.
    head_layers = [model.head_out] + ([model.head_hidden] if model.activation == "gated" else [])
    transposed = {id(layer): layer.kernel.value.T for layer in head_layers}

    def linear(layer, x):
        return project(x, transposed[id(layer)], "bk,nk->bn") + layer.bias.value

    def step(cache, codes, t):
        out, cache = cached_dilated_conv_step(
            embedding[codes],
            cache,
            ring.read_slots(t),
            ring.write_slots(t),
            weights,
            gate_bias,
            cell=model.activation,
            impl=impl,
        )
        return cache, model.head(out, linear)

    return step, cached_conv.init_cache(ring, batch, model.channels, embedding.dtype)


# ------------------------------------------------------------------------------ fused step (impl "fused", CPU)

# Batches up to this use multiply-reduce products (`project`); above it XLA dots. Measured on the 2-core CPU: at
# batch 1 a dot call costs several times its multiply-reduce, at batch 4 the multiply-reduce is slower (XLA
# materialises the [B, N, K] products before reducing them).
MULTIPLY_REDUCE_BATCH = 1


class FusedWeights(NamedTuple):
    """The model's weights for `_fused_stepper`: per layer one product for the taps and one for the outputs.

    taps [L, k*C, G*R] (rows: past taps oldest first, then the current input; columns: filter then gate, the
    model's conv kernel [k, C, G*R] as it is), tap_bias [L, G*R]; gated only (None for relu): outputs
    [L, R, C+S] (residual columns, then skip columns; the last layer's residual is zeros: it feeds nothing),
    output_bias [L, C] (residual biases), skip_bias [S] (the layers' skip biases summed).
    """

    taps: jax.Array
    tap_bias: jax.Array
    outputs: jax.Array | None = None
    output_bias: jax.Array | None = None
    skip_bias: jax.Array | None = None


def fused_weights(model: WaveNet) -> FusedWeights:
    """The model's conv stack as `FusedWeights` (reshapes and concatenations of its own kernels)."""
    taps = jnp.stack([conv.kernel.value.reshape(-1, conv.kernel.value.shape[-1]) for conv in model.convs])
    tap_bias = jnp.stack([conv.bias.value for conv in model.convs])
    if model.activation == "relu":
        return FusedWeights(taps, tap_bias)
    c = model.channels
    residual = [layer.kernel.value for layer in model.residuals] + [jnp.zeros((c, c), taps.dtype)]
    residual_bias = [layer.bias.value for layer in model.residuals] + [jnp.zeros((c,), taps.dtype)]
    outputs = [jnp.concatenate([r, skip.kernel.value], axis=1) for r, skip in zip(residual, model.skips, strict=True)]
    skip_bias = sum(layer.bias.value for layer in model.skips)
    return FusedWeights(taps, tap_bias, jnp.stack(outputs), jnp.stack(residual_bias), skip_bias)


def _fused_stepper(model: WaveNet, batch: int, speaker, impl: str):
    """(step_fn, initial cache) for cached generation in plain XLA, one product per layer and purpose.

    A step reads every layer's past taps from the shared ring cache at once ([L, B, (k-1)*C], one copy of the
    rows), then per layer: a = [past taps, x] taps_l + bias, one [B, k*C] x [k*C, G*R] product; gated:
    z = tanh(a_f) * sigmoid(a_g) and one [B, R] x [R, C+S] product for the residual and the skip together, the
    skip sum accumulated as it goes ([L, B, S] is never stored). It writes all layers' inputs back at the end.
    At batch <= MULTIPLY_REDUCE_BATCH the products are multiply-reduces over weights stored [outputs, inputs]
    (`project`), with the past taps of all layers in one batched product before the layers (a multiply-reduce
    would recompute a concatenated input once per output).
    """
    del impl  # one implementation: plain XLA
    weights = fused_weights(model)
    ring = model.ring
    layers, width, c = ring.num_layers, ring.kernel_size, model.channels
    past_inputs = (width - 1) * c
    small = batch <= MULTIPLY_REDUCE_BATCH
    biases = model.speaker_biases(speaker, batch)
    tap_bias = weights.tap_bias[:, None, :] + (0.0 if biases is None else jnp.stack(biases))  # [L, B or 1, G*R]
    embedding = model.embed.embedding.value
    if small:  # transposed once here, not every step
        past_weights = weights.taps[:, :past_inputs]  # [L, (k-1)*C, G*R]
        current_t = weights.taps[:, past_inputs:].transpose(0, 2, 1)  # [L, G*R, C]
        outputs_t = None if weights.outputs is None else weights.outputs.transpose(0, 2, 1)  # [L, C+S, R]
        head_layers = [model.head_out] + ([model.head_hidden] if model.activation == "gated" else [])
        head_t = {id(layer): layer.kernel.value.T for layer in head_layers}

    def linear(layer, x):
        if small:
            return project(x, head_t[id(layer)], "bk,nk->bn") + layer.bias.value
        return x @ layer.kernel.value + layer.bias.value

    def step(cache, codes, t):
        x = embedding[codes]
        taps = read_rows(cache, ring.read_slots(t)).reshape(layers, width - 1, batch, c)
        taps = taps.transpose(0, 2, 1, 3).reshape(layers, batch, past_inputs)  # oldest tap first
        taps = jax.lax.optimization_barrier(taps)  # read once, before any layer and any write
        if small:
            pre = jnp.einsum("lbi,lio->lbo", taps, past_weights) + tap_bias
        skip, inputs = 0.0, []
        for layer in range(layers):
            inputs.append(x)
            if small:
                a = pre[layer] + project(x, current_t[layer], "bc,oc->bo")
            else:
                a = jnp.concatenate([taps[layer], x], axis=-1) @ weights.taps[layer] + tap_bias[layer]
            if model.activation == "relu":
                x = jax.nn.relu(a)
                continue
            z = jnp.tanh(a[:, :c]) * jax.nn.sigmoid(a[:, c:])
            out = project(z, outputs_t[layer], "br,or->bo") if small else z @ weights.outputs[layer]
            skip = skip + out[:, c:]
            x = x + out[:, :c] + weights.output_bias[layer]
        # The barrier makes the writes depend on every tap read, so the cache is updated in place: otherwise XLA
        # cannot order the last layer's read before the first write and copies the whole cache every step.
        inputs, _ = jax.lax.optimization_barrier((jnp.stack(inputs), taps))
        cache = cache.at[ring.write_slots(t)].set(inputs, mode="promise_in_bounds", unique_indices=True)
        features = skip + weights.skip_bias if model.activation == "gated" else x
        return cache, model.head(features, linear)

    return step, cached_conv.init_cache(ring, batch, c, embedding.dtype)


def _naive_stepper(model: WaveNet, batch: int, speaker, impl: str):
    """(step_fn, initial window) for naive generation: the whole model over the last receptive_field codes."""
    del impl  # the naive method has one implementation: the model's own forward pass
    field = model.receptive_field
    positions = jnp.arange(field)

    def step(window, codes, t):
        window = jnp.concatenate([window[:, 1:], codes[:, None]], axis=1)
        valid = positions >= field - 1 - t  # positions before step 0 act as causal zero padding
        return window, model(window, speaker, valid=valid)[:, -1]

    return step, jnp.zeros((batch, field), jnp.int32)


GENERATORS = {"naive": _naive_stepper, "fast": _fast_stepper}
FAST_IMPLS = ("fused", *IMPLEMENTATIONS)


def resolve_fast_impl(impl: str, batch: int) -> str:
    """The cached step for `impl`: "fused" (this module's per-layer step, plain XLA), "xla" or "pallas" (the stack
    step of kernels/cached_dilated_conv); "auto" is the Pallas kernel on TPU (on GPU it measured slower than XLA:
    kernels.cached_dilated_conv.auto_takes_kernel), and on CPU or GPU the
    stack step at batch 1 and "fused" above it (measured side by side for the 20-layer model in CPU time, load
    about 10: batch 1 xla 5.4-5.7k vs fused 3.7-4.1k samples/s, batch 4 fused 5.8-6.3k vs xla 1.6-2.0k)."""
    lookup({name: name for name in FAST_IMPLS}, impl, "cached step impl")
    if impl != "auto":
        return impl
    if resolve_impl("auto", kernel_fits=auto_takes_kernel) == "pallas":
        return "pallas"
    return "xla" if batch == 1 else "fused"


@functools.partial(
    jax.jit, static_argnames=("graphdef", "method", "num_samples", "temperature", "impl", "unroll", "padded")
)
def _generate(state, first_codes, speaker, key, *, graphdef, method, num_samples, temperature, impl, unroll, padded):
    model = nnx.merge(graphdef, state)
    batch = first_codes.shape[0]
    if padded != batch:  # the kernel's preferred batch: pad once here, never per step
        first_codes = jnp.pad(first_codes, (0, padded - batch))
        speaker = None if speaker is None else jnp.pad(speaker, (0, padded - batch))
    stepper = _fused_stepper if method == "fast" and impl == "fused" else GENERATORS[method]
    step_fn, init = stepper(model, padded, speaker, impl)
    samples, logits = cached_conv.sample_autoregressively(
        step_fn,
        init,
        first_codes,
        num_steps=num_samples,
        num_classes=model.num_classes,
        key=key,
        temperature=temperature,
        unroll=unroll,
    )
    return samples[:, :batch].T, logits[:, :batch]


def make_generator(
    model: WaveNet,
    *,
    method: str,
    batch: int,
    num_samples: int,
    speaker: jax.Array | None = None,
    temperature: float = 1.0,
    first_code: int | None = None,
    impl: str = "auto",
    unroll: int = 1,
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """Compiles a generator now; returns run(key) -> (codes int32 [B, num_samples], logits [num_samples, B, K]).

    method: "naive" or "fast"; speaker int [B] (conditioned models only); first_code: the input of step 0
    (default num_classes // 2, mu-law silence); temperature 0 is greedy; impl picks the cached step (fast only:
    "fused", "xla", "pallas" or "auto", see `resolve_fast_impl`); unroll: time steps per iteration of the
    compiled loop. The same key gives both methods the same noise. Compiling here keeps compilation out of
    whatever times the returned function.
    """
    lookup(GENERATORS, method, "generation method")
    impl = resolve_fast_impl(impl, batch) if method == "fast" else impl
    first = model.num_classes // 2 if first_code is None else first_code
    first_codes = jnp.full((batch,), first, jnp.int32)
    model.speaker_biases(speaker, batch)  # a bad speaker argument fails here, not inside the trace
    graphdef, state = nnx.split(model)
    static = {
        "graphdef": graphdef,
        "method": method,
        "num_samples": num_samples,
        "temperature": float(temperature),
        "impl": impl,
        "unroll": unroll,
        "padded": preferred_batch(batch, impl) if method == "fast" and impl != "fused" else batch,
    }
    compiled = _generate.lower(state, first_codes, speaker, jax.random.key(0), **static).compile()
    return lambda key: compiled(state, first_codes, speaker, key)


def generate(model: WaveNet, *, key: jax.Array, **options) -> tuple[jax.Array, jax.Array]:
    """make_generator(model, **options)(key): codes int32 [B, num_samples] and logits [num_samples, B, K]."""
    return make_generator(model, **options)(key)
