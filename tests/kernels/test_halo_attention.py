"""Halo attention: the Pallas kernel (interpreted on CPU) against the XLA reference, the reference against a
per-query oracle written here, the two extremes the paper names (global attention, SASA's window), and errors."""

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
    halo_attention,
    halo_attention_pallas,
    halo_attention_reference,
    resolve_impl,
)
from tests.helpers import REPO, subprocess_env
from tests.kernels.halo_attention_inputs import halo_attention_inputs
from tests.kernels.kernel_test_base import (
    Case,
    KernelUnderTest,
    assert_close,
    cases,
    compare,
    random_cotangent,
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


PALLAS_CASES = [
    *cases(CASES),
    *cases([CASES[0], CASES[2]], [jnp.bfloat16]),
    *cases([(8, 3, 1, 16, 8, 1, 16)], [jnp.float32, jnp.bfloat16], GPU_TILES),  # HaloNet's b = 8, h = 3, GPU tiles
    *cases([(3, 1, 1, 6, 3, 2, 6)], [jnp.float32], GPU_TILES),
]


@pytest.mark.parametrize("case", PALLAS_CASES)
def test_interpreted_pallas_matches_reference_in_values_and_gradients(case: Case):
    result = HALO.check_pallas_against_reference(case)
    assert result.actual.dtype == case.dtype and result.actual.shape == result.inputs[0].shape


@pytest.mark.parametrize("impl", ["xla", "pallas", "auto"])
def test_public_function_runs_the_chosen_implementation(impl):
    block, halo = 2, 1
    args = inputs(5, block, halo, 1, 4, 4, 2, 4)
    out = jax.jit(with_sizes(halo_attention, block, halo, impl=impl))(*args)
    expected = {"xla": halo_attention_reference, "pallas": halo_attention_pallas}[resolve_impl(impl)]
    np.testing.assert_array_equal(out, jax.jit(with_sizes(expected, block, halo))(*args))
    assert resolve_impl("auto") == ("pallas" if backend.accelerator() else "xla")


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
    with pytest.raises(ValueError, match=r"the Pallas kernel takes q, k and v of one shape.*use impl='xla'"):
        halo_attention(q[:, ::2, ::2], k, v, rel_h, rel_w, block_size=4, halo_size=1, impl="pallas")


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


def accelerator_only(test):
    reason = "needs a GPU or TPU (run with JAX_PLATFORMS unset or =cuda)"
    return pytest.mark.hardware(pytest.mark.skipif(backend.accelerator() is None, reason=reason)(test))


@accelerator_only
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("case", [(8, 3, 2, 32, 32, 4, 16), (8, 3, 1, 16, 24, 2, 64), (10, 3, 1, 20, 20, 2, 32)])
def test_compiled_pallas_matches_reference_on_the_accelerator(case, dtype):
    block, halo, *_ = case
    args = inputs(sum(case), *case, dtype=dtype)
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
