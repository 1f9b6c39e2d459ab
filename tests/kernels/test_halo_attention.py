"""Halo attention: the Pallas kernel (interpreted on CPU) against the XLA reference, the reference against a
per-query oracle written here, the two extremes the paper names (global attention, SASA's window), and errors."""

import dataclasses
import functools
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import backend
from kernels.halo_attention import (
    KernelConfig,
    auto_takes_kernel,
    halo_attention,
    halo_attention_pallas,
    halo_attention_reference,
    resolve_impl,
    tiling,
)
from kernels.halo_attention import api as api_module
from kernels.halo_attention import pallas as pallas_module
from kernels.halo_attention.pallas import launch_for
from tests.helpers import REPO, subprocess_env
from tests.kernels.halo_attention_inputs import halo_attention_inputs
from tests.kernels.kernel_test_base import (
    Case,
    KernelUnderTest,
    assert_close,
    cases,
    compare,
    random_cotangent,
    triton_kernel_calls,
    value_and_grads,
)

# (block b, halo h, batch, H, W, heads, d): several blocks per axis, odd b, d and windows that are not powers of
# two (padded tiles), h = 0, h > b (windows reaching past a neighbour block), b = 1.
CASES = [
    (2, 1, 2, 4, 6, 2, 4),
    (3, 1, 1, 6, 9, 1, 6),
    (4, 2, 1, 8, 8, 2, 8),
    (4, 0, 2, 8, 4, 1, 4),
    (2, 3, 1, 4, 4, 1, 4),
    (1, 2, 1, 3, 5, 2, 4),
]
# (atol, rtol). bfloat16 gets a relative term too: its gradients are stored in bfloat16, whose spacing at 4 is 0.03.
TOLERANCE = {"float32": (1e-5, 0.0), "bfloat16": (2e-2, 2e-2)}
GPU_TILES = KernelConfig(min_tile=16)  # the padding the GPU launch uses, here interpreted

HALO = KernelUnderTest(
    reference=halo_attention_reference,
    pallas=halo_attention_pallas,
    make_inputs=halo_attention_inputs,
    static=lambda sizes: {"block_size": sizes[0], "halo_size": sizes[1]},
    tolerance=TOLERANCE,
)


def inputs(seed, *sizes, dtype=jnp.float32):
    """q, k, v, rel_h, rel_w for sizes (b, h, batch, H, W, heads, d) from a fixed seed."""
    return halo_attention_inputs(jax.random.PRNGKey(seed), sizes, dtype)


def naive_halo_attention(q, k, v, rel_h, rel_w, *, block_size, halo_size):
    """Per-query oracle: each pixel gathers its block's (b+2h)^2 window key by key (zeros outside), then softmax.

    Shares no code with the package: positions come from a Python loop over queries, keys from a gather.
    """
    n, height, width, heads, depth = q.shape
    b, h = block_size, halo_size
    memory = b + 2 * h
    pad = b + h
    key_rows = np.zeros((height, width, memory, memory), np.int32)
    key_cols = np.zeros_like(key_rows)
    for y in range(height):
        for x in range(width):
            top, left = (y // b) * b - h, (x // b) * b - h
            key_rows[y, x] = (top + np.arange(memory))[:, None]
            key_cols[y, x] = (left + np.arange(memory))[None, :]
    spatial = ((0, 0), (pad, pad), (pad, pad), (0, 0), (0, 0))
    k_windows = jnp.pad(k, spatial)[:, key_rows + pad, key_cols + pad]  # [N, H, W, M, M, g, d]
    v_windows = jnp.pad(v, spatial)[:, key_rows + pad, key_cols + pad]
    row_offsets = key_rows - np.arange(height)[:, None, None, None] + b + h - 1
    col_offsets = key_cols - np.arange(width)[None, :, None, None] + b + h - 1
    relative = rel_h[row_offsets] + rel_w[col_offsets]  # [H, W, M, M, d]
    logits = jnp.einsum("nyxgd,nyxjigd->nyxgji", q, k_windows, precision="highest")
    logits += jnp.einsum("nyxgd,yxjid->nyxgji", q, relative, precision="highest")
    weights = jax.nn.softmax(logits.reshape(*logits.shape[:4], -1).astype(jnp.float32), axis=-1)
    values = v_windows.reshape(n, height, width, memory * memory, heads, depth)
    return jnp.einsum("nyxgo,nyxogd->nyxgd", weights, values, precision="highest").astype(q.dtype)


def global_relative_attention(q, k, v, rel_h, rel_w):
    """Dense attention over the whole map, logit q.k + q.rel_h[y'-y+H-1] + q.rel_w[x'-x+W-1] (H = W = b, h = 0)."""
    n, height, width, heads, depth = q.shape
    rows = np.arange(height)[None, :] - np.arange(height)[:, None] + height - 1  # [y, y']
    cols = np.arange(width)[None, :] - np.arange(width)[:, None] + width - 1
    logits = jnp.einsum("nyxgd,nabgd->nyxgab", q, k, precision="highest")
    logits += jnp.einsum("nyxgd,yad->nyxga", q, rel_h[rows], precision="highest")[..., :, None]
    logits += jnp.einsum("nyxgd,xbd->nyxgb", q, rel_w[cols], precision="highest")[..., None, :]
    weights = jax.nn.softmax(logits.reshape(n, height, width, heads, -1), axis=-1)
    return jnp.einsum("nyxgo,nogd->nyxgd", weights, v.reshape(n, height * width, heads, depth), precision="highest")


def with_sizes(fn, block, halo, **kwargs):
    return lambda q, k, v, rel_h, rel_w: fn(q, k, v, rel_h, rel_w, block_size=block, halo_size=halo, **kwargs)


@pytest.mark.parametrize("case", cases(CASES))
def test_reference_matches_per_query_oracle_in_values_and_gradients(case):
    block, halo, batch, height, width, heads, depth = case.sizes
    result = compare(
        with_sizes(halo_attention_reference, block, halo),
        with_sizes(naive_halo_attention, block, halo),
        HALO.inputs(case),
        TOLERANCE["float32"],
        seed=case.seed,
    )
    assert result.actual.shape == (batch, height, width, heads, depth)


def long_cases(params: list) -> list:
    """The same parameters marked `long` (make test-long): coverage the fast set already has in another dtype."""
    return [pytest.param(*p.values, marks=pytest.mark.long, id=p.id) for p in params]


# The fast set: every shape in float32, bfloat16 and padded GPU tiles at HaloNet's b = 8, h = 3.
PALLAS_CASES = [
    *cases(CASES),
    *cases([(8, 3, 1, 16, 8, 1, 16)], [jnp.bfloat16], GPU_TILES),  # HaloNet's b = 8, h = 3, GPU tiles
    *cases([(3, 1, 1, 6, 3, 2, 6)], [jnp.float32], GPU_TILES),
    *long_cases(cases([CASES[0], CASES[2]], [jnp.bfloat16])),
    *long_cases(cases([(8, 3, 1, 16, 8, 1, 16)], [jnp.float32], GPU_TILES)),
]


@pytest.mark.parametrize("case", PALLAS_CASES)
def test_interpreted_pallas_matches_reference_in_values_and_gradients(case: Case):
    result = HALO.check_pallas_against_reference(case)
    assert result.actual.dtype == case.dtype and result.actual.shape == result.inputs[0].shape


# Strided layers (the kept queries: even rows and columns) over (b, h, batch, H, W, heads, d). The fast set covers
# the stride, a large block (b = 16, h = 4, window streamed in chunks by the GPU table's tiles), both dtypes and
# all gradients; the long set covers every b in {4, 8, 12, 16} and h in {1, 2, 3, 4} in several pairings.
STRIDED = KernelUnderTest(
    reference=halo_attention_reference,
    pallas=halo_attention_pallas,
    make_inputs=lambda key, sizes, dtype: halo_attention_inputs(key, sizes, dtype, query_stride=2),
    static=lambda sizes: {"block_size": sizes[0], "halo_size": sizes[1]},
    tolerance=TOLERANCE,
)
STREAMED = tiling.HaloConfig(min_tile=16, query_tile=32, window_rows=8, key_rows=8)  # GPU_TILES' Wn = 32 rule
STRIDED_FAST = [
    *cases([(4, 1, 2, 8, 16, 2, 4)]),
    *cases([(8, 3, 1, 16, 8, 1, 8)], [jnp.bfloat16], GPU_TILES),
    *cases([(16, 4, 1, 32, 16, 1, 4)], [jnp.float32], STREAMED),
]
STRIDED_LONG = [
    *cases([(4, 2, 2, 8, 8, 2, 4), (12, 3, 1, 24, 12, 1, 4), (16, 2, 1, 16, 32, 1, 4)], [jnp.bfloat16]),
    *cases([(8, 1, 1, 16, 16, 2, 4), (12, 1, 1, 12, 24, 1, 4), (16, 4, 1, 32, 16, 1, 4)], [jnp.float32]),
    *cases([(8, 4, 1, 16, 16, 1, 8)], [jnp.float32, jnp.bfloat16], tiling.gpu_config(8, 4, jnp.float32)),
    *cases([(16, 3, 1, 32, 32, 1, 4)], [jnp.bfloat16], STREAMED),
]


@pytest.mark.parametrize("case", STRIDED_FAST + long_cases(STRIDED_LONG))
def test_interpreted_pallas_kept_queries_match_reference_in_values_and_gradients(case: Case):
    result = STRIDED.check_pallas_against_reference(case)
    q, k = result.inputs[:2]
    assert q.shape[1:3] == (k.shape[1] // 2, k.shape[2] // 2)
    assert result.actual.shape == q.shape and result.actual.dtype == case.dtype


@pytest.mark.parametrize("dtype", [jnp.bfloat16, pytest.param(jnp.float32, marks=pytest.mark.long)])
def test_query_tiles_stream_the_window_at_stride_one(dtype):
    """b = 12, h = 2 (the shape that ran out of shared memory in float32) under its GPU_TILES rule (four query
    tiles per block), with the window in two chunks of 8 rows whatever the rule says, interpreted, against the
    reference in values and gradients."""
    config = dataclasses.replace(tiling.gpu_config(12, 2, dtype), window_rows=8)
    case = Case((12, 2, 1, 24, 12, 1, 4), dtype, config)
    result = HALO.check_pallas_against_reference(case)
    assert result.actual.shape == result.inputs[0].shape


def test_gpu_tiles_fit_every_block_and_halo_of_the_family(monkeypatch):
    """The launch a GPU call gets (`launch_for` on a pretended GPU) for every b <= 16, h <= 4, both dtypes, at
    stride 1 and 2: tiles that divide their axes, dot edges of at least 16, and a working set no larger than the
    measured b = 8 bfloat16 one (a 64 x 256 float32 logit tile) and 64 KB per k/v chunk or dk/dv accumulator at
    d = 64, so no shape runs out of shared memory as b = 12 did in float32."""
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    checked = 0
    for dtype in (jnp.float32, jnp.bfloat16):
        for block in range(1, 17):
            for halo in range(5):
                for stride in (1, 2) if block % 2 == 0 else (1,):
                    k_shape = (1, 2 * block, 2 * block, 1, 64)
                    q_shape = (1, 2 * block // stride, 2 * block // stride, 1, 64)
                    launch = launch_for(q_shape, k_shape, block, halo, dtype)
                    assert not launch.interpret and isinstance(launch.config, tiling.HaloConfig)
                    dims = pallas_module._dims(q_shape, k_shape, block, halo, dtype, "highest", launch)
                    what = (block, halo, stride, jnp.dtype(dtype).name, dims)
                    assert dims.window % dims.window_rows == 0 and dims.queries % dims.query_tile == 0, what
                    assert dims.key_edge % dims.key_rows == 0, what
                    edges = (dims.query_tile, dims.window_rows * dims.window, dims.rows * dims.window_rows)
                    assert min(*edges, dims.key_rows * dims.key_edge, dims.rows * dims.key_rows) >= 16, what
                    assert dims.query_tile * dims.window_rows * dims.window <= 64 * 256, what
                    chunk = dims.window_rows * dims.window * dims.depth * jnp.dtype(dtype).itemsize
                    assert chunk <= 64 * 1024 and dims.key_rows * dims.key_edge * dims.depth * 4 <= 64 * 1024, what
                    checked += 1
    assert checked == 2 * 5 * (16 + 8)


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_precision_switch_reaches_every_float32_dot(impl):
    """ "highest" (the default) puts HIGHEST on every dot of the path, kernel bodies included; "default" on none;
    bfloat16 inputs never take it."""
    fn = {"xla": halo_attention_reference, "pallas": functools.partial(halo_attention_pallas, interpret=True)}[impl]
    for dtype, precision, expected in [
        (jnp.float32, "highest", True),
        (jnp.float32, "default", False),
        (jnp.bfloat16, "highest", False),
    ]:
        args = inputs(1, 2, 1, 1, 4, 4, 1, 4, dtype=dtype)
        text = str(jax.make_jaxpr(with_sizes(fn, 2, 1, precision=precision))(*args))
        dots = text.count("dot_general[")
        highest = text.count("precision=(Precision.HIGHEST, Precision.HIGHEST)")
        assert dots >= 4 and highest == (dots if expected else 0), (dtype, precision, dots, highest)
    with pytest.raises(ValueError, match=r"unknown precision 'tf32'; valid choices: highest, default"):
        halo_attention(*inputs(1, 2, 1, 1, 4, 4, 1, 4), block_size=2, halo_size=1, impl=impl, precision="tf32")


@pytest.mark.parametrize("impl", ["xla", "pallas", "auto"])
def test_public_function_runs_the_chosen_implementation(impl):
    block, halo = 2, 1
    args = inputs(5, block, halo, 1, 4, 4, 2, 4)
    out = jax.jit(with_sizes(halo_attention, block, halo, impl=impl))(*args)
    fits = functools.partial(auto_takes_kernel, block_size=block, dtype=args[0].dtype)
    expected = {"xla": halo_attention_reference, "pallas": halo_attention_pallas}[resolve_impl(impl, kernel_fits=fits)]
    np.testing.assert_array_equal(out, jax.jit(with_sizes(expected, block, halo))(*args))


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_auto_runs_the_kernel_where_it_measured_faster_than_xla(monkeypatch, platform):
    """On a pretended machine: on GPU only b <= 8 in 16-bit floats (layout.auto_takes_kernel), on TPU always, on
    CPU never; an explicit impl is kept."""
    monkeypatch.setattr(backend, "accelerator", lambda: platform)
    monkeypatch.setattr(api_module.pallas, "halo_attention_pallas", lambda *args, **kwargs: "pallas")
    monkeypatch.setattr(api_module, "halo_attention_reference", lambda *args, **kwargs: "xla")

    def choice(block, dtype, impl="auto"):
        args = inputs(0, block, 1, 1, 16, 16, 1, 4, dtype=dtype)
        return halo_attention(*args, block_size=block, halo_size=1, impl=impl)

    accelerator = "xla" if platform is None else "pallas"
    assert choice(8, jnp.bfloat16) == choice(4, jnp.float16) == accelerator
    assert choice(8, jnp.float32) == choice(16, jnp.bfloat16) == ("pallas" if platform == "tpu" else "xla")
    assert choice(16, jnp.float32, impl="pallas") == "pallas"


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_no_halo_and_one_block_is_global_attention_with_relative_logits(impl):
    size = 4
    args = inputs(11, size, 0, 2, size, size, 2, 4)
    out = halo_attention(*args, block_size=size, halo_size=0, impl=impl)
    np.testing.assert_allclose(out, global_relative_attention(*args), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["xla", "pallas"])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_unit_blocks_are_sasa_centred_windows_away_from_the_border(impl, kernel_size):
    """b = 1, h = k//2: every pixel attends to the k x k window centred on it, SASA's layer.

    SASA's `naive_local_attention` concatenates half-width row/column tables and MASKS keys outside the image;
    halo attention sums full-width tables and keeps those keys as zeros. Zero-padded halves of the tables make
    the relative terms identical, so the two agree exactly wherever the window lies inside the image, and differ
    at the border (checked, as the documented difference).
    """
    local_attention = pytest.importorskip("common.nn.local_attention")  # needs flax; the kernels do not
    height, width, depth, pad = 7, 8, 4, kernel_size // 2
    q, k, v, _, _ = inputs(kernel_size, 1, pad, 1, height, width, 2, depth)
    keys = jax.random.split(jax.random.PRNGKey(kernel_size + 50), 2)
    rel_row, rel_col = (jax.random.normal(key, (kernel_size, depth // 2)) for key in keys)
    zeros = jnp.zeros_like(rel_row)
    rel_h, rel_w = jnp.concatenate([rel_row, zeros], -1), jnp.concatenate([zeros, rel_col], -1)
    halo = halo_attention(q, k, v, rel_h, rel_w, block_size=1, halo_size=pad, impl=impl)
    sasa = local_attention.naive_local_attention(q, k, v, rel_row, rel_col, kernel_size=kernel_size)
    interior = (slice(None), slice(pad, height - pad), slice(pad, width - pad))
    np.testing.assert_allclose(halo[interior], sasa[interior], atol=1e-5, rtol=1e-5)
    assert not np.allclose(halo[:, 0, 0], sasa[:, 0, 0], atol=1e-3)  # the corner sees zeros vs. nothing


def test_keys_outside_the_image_are_zeros_that_stay_in_the_softmax():
    """A corner query with zero content logits weighs all (b+2h)^2 keys by exp(q . rel) alike, inside or not."""
    block, halo, depth = 2, 1, 4
    q, _, _, rel_h, rel_w = inputs(3, block, halo, 1, 4, 4, 1, depth)
    k = jnp.zeros_like(q)
    v = jnp.ones_like(q)  # inside keys carry value 1, outside keys 0: the output is the weight on the inside
    out = halo_attention_reference(q, k, v, rel_h, rel_w, block_size=block, halo_size=halo)
    logits = np.array([[q[0, 0, 0, 0] @ (rel_h[j - 0 + 1] + rel_w[i + 1]) for i in range(4)] for j in range(4)])
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    np.testing.assert_allclose(out[0, 0, 0, 0], np.full(depth, weights[1:, 1:].sum()), rtol=1e-5)
    assert weights[0].sum() > 0.01  # the padded row keeps real weight: nothing is masked


@pytest.mark.parametrize("impl", ["xla", "auto"])
def test_kept_queries_and_wider_values_take_the_xla_path(impl):
    """The XLA path's two generalisations, each against the full contract: kept queries (q at even rows and
    columns) give the full-resolution outputs there, and values wider than q/k give, in their first d channels,
    the outputs of the first d channels alone (attention is linear in v)."""
    block, halo, depth = 4, 1, 4
    q, k, v, rel_h, rel_w = inputs(21, block, halo, 2, 8, 12, 2, depth)
    full = halo_attention_reference(q, k, v, rel_h, rel_w, block_size=block, halo_size=halo)
    kept = halo_attention(q[:, ::2, ::2], k, v, rel_h, rel_w, block_size=block, halo_size=halo, impl=impl)
    np.testing.assert_allclose(kept, full[:, ::2, ::2], atol=1e-6)
    wide_v = jnp.concatenate([v, jax.random.normal(jax.random.PRNGKey(22), v.shape)], axis=-1)
    wide = halo_attention(q, k, wide_v, rel_h, rel_w, block_size=block, halo_size=halo, impl=impl)
    assert wide.shape == (*q.shape[:4], 2 * depth)
    np.testing.assert_allclose(wide[..., :depth], full, atol=1e-6)
    assert not np.allclose(wide[..., depth:], full, atol=1e-2)


def test_shape_errors_name_the_sizes():
    q, k, v, rel_h, rel_w = inputs(0, 4, 1, 1, 8, 8, 1, 4)
    with pytest.raises(ValueError, match=r"H=6 and W=8 must be multiples of block_size=4"):
        halo_attention(q[:, :6], k[:, :6], v[:, :6], rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match=re.escape("rel_h must have shape (9, 4)") + ".*" + re.escape("got (7, 4)")):
        halo_attention(q, k, v, rel_h[:7], rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match=re.escape("rel_w must have shape (11, 4)") + ".*" + re.escape("got (9, 4)")):
        halo_attention(q, k, v, jnp.zeros((11, 4)), rel_w, block_size=4, halo_size=2)
    with pytest.raises(ValueError, match=re.escape("k must have q's shape (1, 8, 8, 1, 4)") + ".*(1, 8, 4, 1, 4)"):
        halo_attention(q, k[:, :, :4], v, rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match=re.escape("v must have k's shape (1, 8, 8, 1, 4) but for the last axis")):
        halo_attention(q, k, v[:, :4], rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match="v must have dtype float32 like q, got bfloat16"):
        halo_attention(q, k, v.astype(jnp.bfloat16), rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match="block_size must be a positive integer, got 2.0"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=2.0, halo_size=1)
    with pytest.raises(ValueError, match="halo_size must be a non-negative integer, got -1"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=4, halo_size=-1)
    with pytest.raises(ValueError, match=r"unknown impl 'triton'; valid choices: xla, pallas, auto"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=4, halo_size=1, impl="triton")
    with pytest.raises(ValueError, match=re.escape("unknown num_warps 3; valid choices: 1, 2, 4, 8, 16")):
        KernelConfig(num_warps=3)
    with pytest.raises(ValueError, match="kept queries .* need an even block_size, got 3"):
        halo_attention(q[:, :3, :3], k[:, :6, :6], v[:, :6, :6], rel_h[:7], rel_w[:7], block_size=3, halo_size=1)
    wide_v = jnp.concatenate([v, v], axis=-1)
    with pytest.raises(ValueError, match=re.escape("the Pallas kernel takes v of k's shape (1, 8, 8, 1, 4), got v")):
        halo_attention(q[:, ::2, ::2], k, wide_v, rel_h, rel_w, block_size=4, halo_size=1, impl="pallas")


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_silent_misuses_are_refused(impl):
    q, k, v, rel_h, rel_w = inputs(0, 4, 1, 1, 8, 8, 1, 4)
    with pytest.raises(ValueError, match="block_size must be a positive integer, got True"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=True, halo_size=1, impl=impl)
    with pytest.raises(ValueError, match="rel_w must have dtype float32 like q, got bfloat16"):
        halo_attention(q, k, v, rel_h, rel_w.astype(jnp.bfloat16), block_size=4, halo_size=1, impl=impl)
    with pytest.raises(ValueError, match="q must hold floating-point numbers, got int32"):
        ints = [x.astype(jnp.int32) for x in (q, k, v, rel_h, rel_w)]
        halo_attention(*ints, block_size=4, halo_size=1, impl=impl)
    with pytest.raises(ValueError, match=re.escape("q has an empty batch axis (shape (0, 8, 8, 1, 4))")):
        halo_attention(q[:0], k[:0], v[:0], rel_h, rel_w, block_size=4, halo_size=1, impl=impl)


# (sizes, dtype, query stride): one case per GPU_TILES rule (the last: Wn = 64), kept queries and b = 1 (reach 2).
TRITON_CASES = [
    ((8, 3, 1, 16, 16, 2, 32), jnp.bfloat16, 2),
    pytest.param((8, 3, 1, 16, 16, 2, 32), jnp.float32, 1, marks=pytest.mark.long),
    pytest.param((16, 4, 1, 32, 32, 2, 32), jnp.bfloat16, 1, marks=pytest.mark.long),
    pytest.param((16, 4, 1, 32, 32, 2, 64), jnp.float32, 2, marks=pytest.mark.long),
    pytest.param((16, 9, 1, 32, 16, 1, 32), jnp.bfloat16, 1, marks=pytest.mark.long),
    pytest.param((1, 2, 1, 4, 4, 1, 16), jnp.bfloat16, 1, marks=pytest.mark.long),
]


@pytest.mark.parametrize(("sizes", "dtype", "query_stride"), TRITON_CASES)
def test_forward_and_backward_lower_to_triton_for_a_gpu(monkeypatch, sizes, dtype, query_stride):
    """On a pretended GPU, `halo_attention_pallas` takes its GPU_TILES config and Triton compiler params; its
    forward and gradients lower (on CPU, `triton_kernel_calls`) to three Triton kernels: forward, dq, dk/dv."""
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    block, halo = sizes[:2]
    args = halo_attention_inputs(jax.random.PRNGKey(sum(sizes)), sizes, dtype, query_stride)

    def loss(*args):
        return jnp.sum(halo_attention_pallas(*args, block_size=block, halo_size=halo).astype(jnp.float32) ** 2)

    assert triton_kernel_calls(jax.grad(loss, argnums=(0, 1, 2, 3, 4)), *args) == 3


def accelerator_only(test):
    reason = "needs a GPU or TPU (run with JAX_PLATFORMS unset or =cuda)"
    return pytest.mark.hardware(pytest.mark.skipif(backend.accelerator() is None, reason=reason)(test))


@accelerator_only
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    ("case", "query_stride"),
    [
        ((8, 3, 2, 32, 32, 4, 16), 1),
        ((8, 3, 1, 16, 24, 2, 64), 1),
        ((10, 3, 1, 20, 20, 2, 32), 1),
        ((8, 3, 2, 32, 32, 2, 32), 2),  # a strided layer's kept queries
        ((12, 2, 1, 48, 24, 2, 32), 1),  # the shape that ran out of shared memory in float32: query tiles
        ((16, 4, 1, 32, 32, 2, 32), 2),  # Wn = 32: the streamed window
    ],
)
def test_compiled_pallas_matches_reference_on_the_accelerator(case, query_stride, dtype):
    block, halo, *_ = case
    args = halo_attention_inputs(jax.random.PRNGKey(sum(case)), case, dtype, query_stride)
    cotangent = random_cotangent(with_sizes(halo_attention_reference, block, halo), args, sum(case))
    out, grads = value_and_grads(with_sizes(halo_attention_pallas, block, halo), args, cotangent)
    # The truth is the float32 reference on the same (possibly bfloat16-rounded) inputs: a bfloat16 XLA run
    # rounds its own sums differently, so two bfloat16 results can sit several ulps apart on large reductions
    # such as the relative-table gradients.
    upcast = [x.astype(jnp.float32) for x in (*args, cotangent)]
    out_ref, grads_ref = value_and_grads(with_sizes(halo_attention_reference, block, halo), upcast[:-1], upcast[-1])
    relative_tolerance = {jnp.float32: 1e-4, jnp.bfloat16: 2e-2}[dtype]  # float32: no TF32, other sum order
    names = ("output", "dq", "dk", "dv", "drel_h", "drel_w")
    for name, g, g_ref in zip(names, (out, *grads), (out_ref, *grads_ref), strict=True):
        scale = max(1.0, float(jnp.max(jnp.abs(g_ref))))
        assert_close(g.astype(jnp.float32), g_ref, (relative_tolerance * scale, relative_tolerance), name)


@pytest.mark.long
@pytest.mark.slow
def test_gpu_benchmark_runs_quick_on_cpu(tmp_path):
    output = tmp_path / "halo.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.halo_attention_gpu", "--quick", "--output", str(output)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    assert "| forward | xla |" in text and "| forward+backward | pallas (interpret) |" in text
    assert "failed" not in text
    assert "machine: cpu" in text and "--quick" in text
    rows = [line for line in text.splitlines() if line.startswith("| 1x8x8")]
    assert len(rows) == 4
    errors = [float(row.split("|")[-2]) for row in rows if "pallas" in row]
    assert max(errors) < 5e-2  # bfloat16 pallas vs xla, outputs and gradients
    assert os.path.getsize(output) > 0
