"""The cached conv-stack step, every cell (WaveNet's gated and relu stacks on 1-D rings, PixelCNN++'s gated resnet
blocks on 2-D pixel rings): the Pallas kernel (interpreted on CPU) against the XLA reference, the reference against
a per-layer oracle written here, the small-batch products against einsum, and the shape errors."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.nn.cached_conv import PixelRingLayout, RingLayout
from kernels import backend
from kernels.cached_dilated_conv import (
    KernelConfig,
    StackWeights,
    auto_takes_kernel,
    cached_dilated_conv_step,
    cached_dilated_conv_step_pallas,
    cached_dilated_conv_step_reference,
    resolve_impl,
)
from kernels.cached_dilated_conv import api as api_module
from kernels.cached_dilated_conv import layout as stack_layout
from tests.kernels.kernel_test_base import Case, KernelUnderTest, cases, triton_kernel_calls

# (cell, kernel_size, dilations, batch, channels, R, skip channels, speaker conditioning)
CASES = [
    ("gated", 2, (1, 2, 4, 8), 1, 8, 8, 16, False),
    ("gated", 3, (1, 3, 2), 3, 4, 6, 8, True),
    ("gated", 2, (2,), 2, 8, 8, 4, False),  # one layer: no residual output is used
    ("relu", 2, (1, 2, 4, 1), 2, 8, 8, 0, False),
    ("relu", 4, (2, 1), 5, 4, 4, 0, True),  # batch above layout.SMALL_BATCH: the dot path
]


def stack_inputs(key, sizes, dtype=jnp.float32):
    """sizes (cell, kernel_size, dilations, batch, channels, R, skip channels, conditioned) -> x, a cache full
    of random past rows, weights scaled like a trained net's, gate_bias or None, and the ring slots of a random
    step (the arguments of the step, in order)."""
    cell, kernel_size, dilations, batch, channels, width, skip_channels, condition = sizes
    ring = RingLayout(dilations, kernel_size)
    groups = stack_layout.CELLS[cell].groups[0]
    layers = ring.num_layers
    keys = iter(jax.random.split(key, 12))

    def normal(shape, scale=1.0):
        return (jax.random.normal(next(keys), shape, jnp.float32) * scale).astype(dtype)

    fan_in = kernel_size * channels
    weights = StackWeights(
        past=normal((layers, groups, width, (kernel_size - 1) * channels), fan_in**-0.5),
        current=normal((layers, groups, width, channels), fan_in**-0.5),
        bias=normal((layers, groups, width), 0.1),
    )
    if cell == "gated":
        weights = weights._replace(
            residual=normal((layers, channels, width), width**-0.5),
            residual_bias=normal((layers, channels), 0.1),
            skip=normal((skip_channels, layers * width), width**-0.5),
            skip_bias=normal((skip_channels,), 0.1),
        )
    gate_bias = normal((layers, groups, batch, width), 0.5) if condition else None
    step = int(jax.random.randint(next(keys), (), 0, 3 * ring.num_slots + 1))
    x = normal((batch, channels))
    cache = normal((ring.num_slots, batch, channels))
    return x, cache, ring.read_slots(step), ring.write_slots(step), weights, gate_bias


def inputs(seed, *sizes):
    return stack_inputs(jax.random.PRNGKey(seed), sizes)


# PixelCNN++'s gated resnet blocks: (image width, layers, batch, channels, with an aux input)
RESNET_CASES = [(3, 2, 1, 4, True), (5, 3, 2, 8, False), (2, 1, 6, 4, True)]  # the last above SMALL_BATCH


def resnet_inputs(key, sizes, dtype=jnp.float32):
    """sizes (image width, layers, batch, channels, aux) -> the step's arguments at a random pixel of a random
    image row: a cache of random rings (zero padding column kept), both convs' 2 x 2 kernels per layer in the
    layout's split (concat_elu: 2C inputs per tap), the aux projection as gate_bias or None."""
    width, layers, batch, channels, aux = sizes
    rings = PixelRingLayout(width, layers, convs_per_layer=2)
    keys = iter(jax.random.split(key, 10))

    def normal(shape, scale=1.0):
        return (jax.random.normal(next(keys), shape, jnp.float32) * scale).astype(dtype)

    fan_in = 4 * 2 * channels
    weights = StackWeights(
        past=normal((layers, 1, channels, 3 * 2 * channels), fan_in**-0.5),
        current=normal((layers, 1, channels, 2 * channels), fan_in**-0.5),
        bias=normal((layers, 1, channels), 0.1),
        out_past=normal((layers, 2, channels, 3 * 2 * channels), fan_in**-0.5),
        out_current=normal((layers, 2, channels, 2 * channels), fan_in**-0.5),
        out_bias=normal((layers, 2, channels), 0.1),
    )
    row, col = (int(v) for v in jax.random.randint(next(keys), (2,), 0, jnp.array([7, width])))
    cache = normal((rings.num_slots, batch, channels)).reshape(-1, 2, width + 1, batch, channels)
    cache = cache.at[:, :, 0].set(0.0).reshape(rings.num_slots, batch, channels)  # the left padding column
    gate_bias = normal((layers, 1, batch, channels), 0.5) if aux else None
    x = normal((batch, channels))
    return x, cache, rings.read_slots(row, col), rings.write_slots(row, col), weights, gate_bias


RESNET = KernelUnderTest(
    reference=cached_dilated_conv_step_reference,
    pallas=cached_dilated_conv_step_pallas,
    make_inputs=resnet_inputs,
    static=lambda sizes: {"cell": "gated_resnet"},
    tolerance={"float32": (1e-5, 1e-5)},
    differentiable=False,
)


def resnet_oracle(x, cache, read_slots, write_slots, weights, gate_bias):
    """PixelCNN++'s block at one pixel in numpy: each conv as one matmul of its whole 2 x 2 window (past taps then
    the current input) after concat_elu; h = conv_in + aux, out = x + a * sigmoid(b). Every layer's output."""
    x, cache = np.asarray(x, np.float64), np.array(cache, np.float64)
    w = {k: None if v is None else np.asarray(v, np.float64) for k, v in weights._asdict().items()}

    def concat_elu(v):
        v = np.concatenate([v, -v], axis=-1)
        return np.where(v > 0, v, np.expm1(np.minimum(v, 0)))

    def conv(slots, current, past, now, bias):  # -> [G, B, R]
        window = np.concatenate([concat_elu(cache[s]) for s in np.asarray(slots)] + [concat_elu(current)], axis=1)
        return np.einsum("bi,gri->gbr", window, np.concatenate([past, now], axis=2)) + bias[:, None, :]

    new_cache, outputs = cache.copy(), []
    for layer in range(read_slots.shape[0]):
        slots = np.asarray(read_slots[layer]).reshape(2, 3)
        hidden = conv(slots[0], x, w["past"][layer], w["current"][layer], w["bias"][layer])[0]
        if gate_bias is not None:
            hidden = hidden + np.asarray(gate_bias[layer, 0], np.float64)
        a, b = conv(slots[1], hidden, w["out_past"][layer], w["out_current"][layer], w["out_bias"][layer])
        new_cache[int(write_slots[layer, 0])], new_cache[int(write_slots[layer, 1])] = x, hidden
        x = x + a / (1.0 + np.exp(-b))
        outputs.append(x)
    return np.stack(outputs), new_cache


STACK = KernelUnderTest(
    reference=cached_dilated_conv_step_reference,
    pallas=cached_dilated_conv_step_pallas,
    make_inputs=stack_inputs,
    static=lambda sizes: {"cell": sizes[0]},
    tolerance={"float32": (1e-5, 1e-5)},
    differentiable=False,  # a generation step: no VJP
)


def oracle_step(x, cache, read_slots, write_slots, weights, gate_bias, cell):
    """Layer by layer in numpy: gather the layer's taps, one matmul with the whole [k*C] kernel, then the unit.

    Shares no code with the package: the taps are concatenated (oldest first) instead of split past/current.
    """
    x, cache = np.asarray(x, np.float64), np.array(cache, np.float64)
    w = {k: None if v is None else np.asarray(v, np.float64) for k, v in weights._asdict().items()}
    layers, groups, width, channels = w["current"].shape
    new_cache, skip = cache.copy(), 0.0
    for layer in range(layers):
        taps = np.concatenate([cache[slot] for slot in np.asarray(read_slots[layer])] + [x], axis=1)  # [B, k*C]
        kernel = np.concatenate([w["past"][layer], w["current"][layer]], axis=2)  # [G, R, k*C]
        a = np.einsum("bi,gri->gbr", taps, kernel) + w["bias"][layer][:, None, :]
        if gate_bias is not None:
            a = a + np.asarray(gate_bias[layer], np.float64)
        new_cache[int(write_slots[layer])] = x
        if cell == "relu":
            x = np.maximum(a[0], 0.0)
            continue
        z = np.tanh(a[0]) / (1.0 + np.exp(-a[1]))
        skip = skip + z @ w["skip"][:, layer * width : (layer + 1) * width].T
        x = x + z @ w["residual"][layer].T + w["residual_bias"][layer]
    out = skip + w["skip_bias"] if cell == "gated" else x
    return out, new_cache


def reference_step(args, cell):
    return jax.jit(lambda *a: cached_dilated_conv_step_reference(*a, cell=cell))(*args)


def assert_cache_updated(kernel_cache, reference_cache, old_cache, write_slots, tolerance=1e-5):
    """Written rows match the reference's (same inputs up to rounding); every other row is bit-for-bit the old one."""
    np.testing.assert_allclose(kernel_cache, reference_cache, atol=tolerance, rtol=tolerance)
    untouched = np.ones(old_cache.shape[0], bool)
    untouched[np.asarray(write_slots)] = False
    np.testing.assert_array_equal(np.asarray(kernel_cache)[untouched], np.asarray(old_cache)[untouched])
    assert not np.allclose(np.asarray(kernel_cache)[~untouched], np.asarray(old_cache)[~untouched])


@pytest.mark.parametrize("case", cases(CASES))
def test_reference_matches_per_layer_oracle(case: Case):
    cell = case.sizes[0]
    args = STACK.inputs(case)
    out, cache = reference_step(args, cell)
    expected_out, expected_cache = oracle_step(*args, cell)
    np.testing.assert_allclose(out, expected_out, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(cache, expected_cache, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", cases(CASES))
def test_pallas_interpret_matches_reference(case: Case):
    result = STACK.check_pallas_against_reference(case)
    (_, kernel_cache), (_, cache) = result.actual, result.expected
    assert_cache_updated(kernel_cache, cache, result.inputs[1], result.inputs[3])


@pytest.mark.parametrize("case", cases(RESNET_CASES))
def test_gated_resnet_reference_matches_block_oracle(case: Case):
    args = RESNET.inputs(case)
    out, cache = reference_step(args, "gated_resnet")
    expected_out, expected_cache = resnet_oracle(*args)
    np.testing.assert_allclose(out, expected_out, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(cache, expected_cache, atol=1e-5, rtol=1e-5)


# The last case's batch 6 is padded to 8 rows, as on a GPU: every layer's output is cut back to the batch.
@pytest.mark.parametrize("case", cases(RESNET_CASES[:-1]) + cases(RESNET_CASES[-1:], config=KernelConfig(min_tile=4)))
def test_gated_resnet_pallas_interpret_matches_reference(case: Case):
    result = RESNET.check_pallas_against_reference(case)
    (kernel_out, kernel_cache), (out, cache) = result.actual, result.expected
    assert kernel_out.shape == out.shape == (case.sizes[1], case.sizes[2], case.sizes[3])
    assert_cache_updated(kernel_cache, cache, result.inputs[1], result.inputs[3])


def test_pallas_pads_the_batch_to_its_tile():
    padded = KernelConfig(min_tile=4)  # batch 3 -> 4, as on a GPU (16)
    result = STACK.check_pallas_against_reference(Case(("gated", 2, (1, 2), 3, 4, 4, 8, True), config=padded))
    (kernel_out, kernel_cache), (out, cache) = result.actual, result.expected
    assert kernel_out.shape == out.shape and kernel_cache.shape == cache.shape
    assert_cache_updated(kernel_cache, cache, result.inputs[1], result.inputs[3])


@pytest.mark.parametrize("impl", ["xla", "pallas", "auto"])
def test_public_function_dispatches_every_impl(impl):
    args = inputs(5, "relu", 2, (1, 2), 2, 4, 4, 0, False)
    out, cache = jax.jit(lambda *a: cached_dilated_conv_step(*a, cell="relu", impl=impl))(*args)
    expected_out, expected_cache = oracle_step(*args, "relu")
    np.testing.assert_allclose(out, expected_out, atol=1e-5)
    np.testing.assert_allclose(cache, expected_cache, atol=1e-5)
    on_tpu = backend.accelerator() == "tpu"  # "auto" takes the kernel there only (the test below pretends each machine)
    assert resolve_impl("auto", kernel_fits=auto_takes_kernel) == ("pallas" if on_tpu else "xla")


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_auto_runs_the_kernel_on_tpu_only(monkeypatch, platform):
    """On a pretended machine: "auto" takes XLA on a GPU, where the kernel measured slower (auto_takes_kernel),
    and the kernel on TPU."""
    monkeypatch.setattr(backend, "accelerator", lambda: platform)
    monkeypatch.setattr(api_module, "cached_dilated_conv_step_reference", lambda *args, **kwargs: "xla")
    monkeypatch.setattr(api_module.pallas, "cached_dilated_conv_step_pallas", lambda *args, **kwargs: "pallas")
    args = inputs(5, "relu", 2, (1, 2), 2, 16, 16, 0, False)
    assert cached_dilated_conv_step(*args, cell="relu", impl="auto") == ("pallas" if platform == "tpu" else "xla")
    assert resolve_impl("auto", kernel_fits=auto_takes_kernel) == ("pallas" if platform == "tpu" else "xla")


@pytest.mark.parametrize("batch", [1, 2, stack_layout.SMALL_BATCH, stack_layout.SMALL_BATCH + 3])
@pytest.mark.parametrize("spec", ["bc,grc->gbr", "lbi,lgri->lgbr", "bk,sk->bs"])
@pytest.mark.parametrize("groups", [1, 2])
def test_project_matches_einsum_on_both_paths(batch, spec, groups):
    """Called eagerly, and jitted with the weights as constants (as a generation loop closes over them): XLA on CPU
    in JAX 0.10.2 miscompiled the multiply-reduce of constant weights with a size-1 axis (groups = 1)."""
    x_axes, w_axes = spec.split("->")[0].split(",")
    sizes = {"b": batch, "c": 64, "g": groups, "r": 32, "l": 4, "i": 6, "k": 7, "s": 3}
    x = jax.random.normal(jax.random.PRNGKey(batch), [sizes[a] for a in x_axes])
    w = jax.random.normal(jax.random.PRNGKey(groups), [sizes[a] for a in w_axes])
    expected = jnp.einsum(spec, x, w)
    np.testing.assert_allclose(stack_layout.project(x, w, spec), expected, rtol=1e-5, atol=1e-4)
    closed_over = jax.jit(lambda x: stack_layout.project(x, w, spec))(x)
    np.testing.assert_allclose(closed_over, expected, rtol=1e-5, atol=1e-4)


def _replace(args, index, value):
    args = list(args)
    args[index] = value
    return args


BAD_INPUTS = [
    (lambda a: _replace(a, 0, a[0][:, :-1]), "cache must be [slots, 3, 3]"),
    (lambda a: _replace(a, 0, a[0][0]), "x must be [batch, channels]"),
    (lambda a: _replace(a, 2, a[2][:-1]), "read_slots must be [3 layers, 1 * (taps - 1)]"),
    (lambda a: _replace(a, 3, a[3][:-1]), "write_slots must have shape (3,)"),
    (lambda a: _replace(a, 3, a[3].astype(jnp.float32)), "write_slots must hold integers, got float32"),
    (lambda a: _replace(a, 5, a[5][:, :1]), "gate_bias must have shape (3, 2, 3, 6)"),
    (lambda a: _replace(a, 4, a[4]._replace(past=a[4].past[..., :-1])), "weights.past must have shape (3, 2, 6, 8)"),
    (lambda a: _replace(a, 4, a[4]._replace(skip=None)), "a gated stack needs weights.skip"),
    (lambda a: _replace(a, 4, a[4]._replace(residual_bias=a[4].residual_bias[1:])), "weights.residual_bias must"),
    (lambda a: _replace(a, 0, a[0][:0]), "x has an empty batch axis"),
    (lambda a: _replace(a, 0, a[0].astype(jnp.int32)), "x must hold floating-point numbers, got int32"),
    (lambda a: _replace(a, 1, a[1].astype(jnp.bfloat16)), "cache must have dtype float32 like x, got bfloat16"),
    (lambda a: _replace(a, 3, a[3].at[0].set(99)), "write_slots must lie in [0, "),
    (lambda a: _replace(a, 2, a[2].at[0, 0].set(-1)), "read_slots must lie in [0, "),
]


@pytest.mark.parametrize(("corrupt", "message"), BAD_INPUTS)
@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_wrong_shapes_raise_clear_errors(corrupt, message, impl):
    args = corrupt(inputs(0, "gated", 3, (1, 2, 3), 3, 4, 6, 8, True))
    args[0] = args[0][:, :3] if message.startswith("cache must be") else args[0]
    with pytest.raises(ValueError, match=re.escape(message)):
        cached_dilated_conv_step(*args, cell="gated", impl=impl)


def test_gated_resnet_inputs_that_do_not_fit_raise_clear_errors():
    args = list(resnet_inputs(jax.random.PRNGKey(0), RESNET_CASES[0]))
    with pytest.raises(ValueError, match=re.escape("write_slots must have shape (2, 2)")):
        cached_dilated_conv_step(*_replace(args, 3, args[3][:, 0]), cell="gated_resnet")
    with pytest.raises(ValueError, match="a gated_resnet stack needs its second conv"):
        cached_dilated_conv_step(*_replace(args, 4, args[4]._replace(out_current=None)), cell="gated_resnet")
    with pytest.raises(ValueError, match=re.escape("weights.current must have shape (2, 1, 4, 8)")):
        narrow = args[4]._replace(current=args[4].current[..., :4])
        cached_dilated_conv_step(*_replace(args, 4, narrow), cell="gated_resnet")


def test_bad_names_and_configs_list_the_valid_choices():
    args = inputs(0, "relu", 2, (1,), 1, 4, 4, 0, False)
    with pytest.raises(ValueError, match="unknown impl 'cuda'; valid choices: xla, pallas, auto"):
        cached_dilated_conv_step(*args, cell="relu", impl="cuda")
    with pytest.raises(ValueError, match="unknown cell 'tanh'; valid choices: gated, relu, gated_resnet"):
        cached_dilated_conv_step(*args, cell="tanh")
    with pytest.raises(ValueError, match="cell 'gated' needs 2 groups, weights have 1"):
        cached_dilated_conv_step(*args, cell="gated")
    with pytest.raises(ValueError, match="unknown num_warps 3; valid choices"):
        KernelConfig(num_warps=3)
    with pytest.raises(ValueError, match="min_tile must be a power of two, got 0"):
        KernelConfig(min_tile=0)


def any_inputs(seed, case):
    """A case of either list: ("gated_resnet", *RESNET_CASES sizes) or a CASES tuple."""
    if case[0] == "gated_resnet":
        return resnet_inputs(jax.random.PRNGKey(seed), case[1:])
    return inputs(seed, *case)


# GPU tiles: powers of two >= 16 (the batch is padded to 16 rows by the kernel's launch).
HARDWARE_CASES = [
    ("gated", 2, (1, 2, 4, 8), 1, 64, 64, 128, False),
    ("gated", 3, (1, 3, 2), 3, 16, 32, 16, True),
    ("relu", 2, (1, 2, 4, 1), 2, 128, 128, 0, False),
    ("gated_resnet", 16, 5, 4, 32, True),
]


LOWERING_CASES = [HARDWARE_CASES[0], ("gated_resnet", 4, 2, 4, 16, True)]  # the smallest GPU-sized stack of each


@pytest.mark.parametrize("case", LOWERING_CASES, ids=["gated", "gated_resnet"])
def test_kernel_lowers_to_triton_for_a_gpu(monkeypatch, case):
    """On a pretended GPU the step takes its GPU launch (batch padded to 16, Triton params) and lowers, on CPU
    (`triton_kernel_calls`), to one Triton kernel: the whole stack in one program."""
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    args = any_inputs(13, case)
    assert triton_kernel_calls(lambda *a: cached_dilated_conv_step_pallas(*a, cell=case[0]), *args) == 1


@pytest.mark.hardware
@pytest.mark.skipif(backend.accelerator() is None, reason="needs a GPU or TPU")
@pytest.mark.parametrize("case", HARDWARE_CASES)
def test_compiled_kernel_matches_reference_on_hardware(case):
    cell = case[0]
    args = any_inputs(13, case)
    out, cache = reference_step(args, cell)
    kernel_out, kernel_cache = jax.jit(lambda *a: cached_dilated_conv_step_pallas(*a, cell=cell))(*args)
    np.testing.assert_allclose(kernel_out, out, atol=2e-2, rtol=2e-2)  # TF32 dots on GPU
    # rows written from computed values (every layer's input after the first) carry the same rounding
    assert_cache_updated(kernel_cache, cache, args[1], args[3], tolerance=2e-2)


@pytest.mark.parametrize(
    "case",
    [
        CASES[1],
        ("gated", 2, (1, 2), 8, 8, 4, 16, False),
        ("relu", 4, (2, 1), 5, 4, 4, 0, True),
        ("gated_resnet", *RESNET_CASES[-1]),
    ],
)
def test_step_cost_counts_the_reference_matmuls_and_the_minimum_bytes(case):
    """FLOPs: what common.nn.counting reads off the XLA path's jaxpr at a batch above SMALL_BATCH (every product
    a dot); bytes: each weight, x, gate_bias, the past rows once, plus the written rows and the output."""
    counting = pytest.importorskip("common.nn.counting")
    cell = case[0]
    x, cache, read_slots, write_slots, weights, gate_bias = any_inputs(3, case)
    batch, channels = x.shape
    bytes_, flops = stack_layout.step_cost(x, cache, read_slots, weights, gate_bias, cell)
    reference = functools.partial(cached_dilated_conv_step_reference, cell=cell)
    if batch > stack_layout.SMALL_BATCH:
        assert flops == counting.count_flops(reference, x, cache, read_slots, write_slots, weights, gate_bias)
    arrays = [w for w in weights if w is not None] + ([gate_bias] if gate_bias is not None else [])
    rows = read_slots.size + write_slots.size + 1  # past rows read, rows written, x
    out = jax.eval_shape(reference, x, cache, read_slots, write_slots, weights, gate_bias)[0]
    expected = 4 * (sum(a.size for a in arrays) + rows * batch * channels + out.size)  # float32
    assert bytes_ == expected


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gated", "gated_resnet"])
def test_gpu_benchmark_runs_quick_on_cpu(tmp_path, cell):
    """The GPU benchmark's --quick run on CPU, for each model's cell: both impls at batch 1 and 4, agreeing, and
    its goal line."""
    from tests.helpers import run_module

    output = tmp_path / "conv.md"
    run_module("benchmarks.cached_dilated_conv_gpu", "--quick", "--cell", cell, "--output", str(output), timeout=300)
    text = output.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 4 and sum("pallas (interpret)" in row for row in rows) == 2, text
    assert "failed" not in text and "GOAL UNTESTED: cached step >= 2x XLA at batch 16-256" in text
    errors = [float(row.split("|")[-2]) for row in rows if "pallas" in row]
    assert max(errors) < 1e-4
