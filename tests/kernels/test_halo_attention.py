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
from kernels.halo_attention.reference import random_inputs
from tests.helpers import REPO, subprocess_env

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
TOLERANCE = {jnp.float32: (1e-5, 0.0), jnp.bfloat16: (2e-2, 2e-2)}
GPU_TILES = KernelConfig(min_dim=16)  # the padding the GPU launch uses, here interpreted


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


def value_and_grads(attention, args, cotangent):
    """attention(*args) and the gradients of <attention(*args), cotangent> wrt all five arguments, jitted."""

    @jax.jit
    def run(*args):
        out, vjp = jax.vjp(attention, *args)
        return out, vjp(cotangent)

    return run(*args)


def assert_close(actual, expected, tolerance, what):
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    atol, rtol = tolerance
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)


def with_sizes(fn, block, halo, **kwargs):
    return lambda q, k, v, rel_h, rel_w: fn(q, k, v, rel_h, rel_w, block_size=block, halo_size=halo, **kwargs)


@pytest.mark.parametrize(("block", "halo", "batch", "height", "width", "heads", "depth"), CASES)
def test_reference_matches_per_query_oracle_in_values_and_gradients(block, halo, batch, height, width, heads, depth):
    args, cotangent = random_inputs(block * 10 + halo, block, halo, batch, height, width, heads, depth)
    out, grads = value_and_grads(with_sizes(halo_attention_reference, block, halo), args, cotangent)
    out_naive, grads_naive = value_and_grads(with_sizes(naive_halo_attention, block, halo), args, cotangent)
    assert out.shape == (batch, height, width, heads, depth)
    assert_close(out, out_naive, TOLERANCE[jnp.float32], "output")
    for name, g, g_naive in zip(("q", "k", "v", "rel_h", "rel_w"), grads, grads_naive, strict=True):
        assert np.any(g_naive != 0), name
        assert_close(g, g_naive, TOLERANCE[jnp.float32], f"d{name}")


PALLAS_CASES = [(case, jnp.float32, None) for case in CASES] + [
    (CASES[0], jnp.bfloat16, None),
    (CASES[2], jnp.bfloat16, None),
    ((8, 3, 1, 16, 8, 1, 16), jnp.float32, GPU_TILES),  # HaloNet's b = 8, h = 3 with the GPU's tile padding
    ((8, 3, 1, 16, 8, 1, 16), jnp.bfloat16, GPU_TILES),
    ((3, 1, 1, 6, 3, 2, 6), jnp.float32, GPU_TILES),
]


@pytest.mark.parametrize(("case", "dtype", "config"), PALLAS_CASES, ids=lambda x: str(getattr(x, "__name__", x)))
def test_interpreted_pallas_matches_reference_in_values_and_gradients(case, dtype, config):
    block, halo, *sizes = case
    args, cotangent = random_inputs(sum(case) + 100, block, halo, *sizes, dtype=dtype)
    out, grads = value_and_grads(
        with_sizes(halo_attention_pallas, block, halo, interpret=True, config=config), args, cotangent
    )
    out_ref, grads_ref = value_and_grads(with_sizes(halo_attention_reference, block, halo), args, cotangent)
    assert out.dtype == dtype and out.shape == args[0].shape
    tol = TOLERANCE[dtype]
    assert_close(out, out_ref, tol, "output")
    for name, g, g_ref, x in zip(("q", "k", "v", "rel_h", "rel_w"), grads, grads_ref, args, strict=True):
        assert g.dtype == x.dtype and g.shape == x.shape, name
        assert_close(g, g_ref, tol, f"d{name}")


@pytest.mark.parametrize("impl", ["xla", "pallas", "auto"])
def test_public_function_runs_the_chosen_implementation(impl):
    block, halo = 2, 1
    args, _ = random_inputs(5, block, halo, 1, 4, 4, 2, 4)
    out = jax.jit(with_sizes(halo_attention, block, halo, impl=impl))(*args)
    expected = {"xla": halo_attention_reference, "pallas": halo_attention_pallas}[resolve_impl(impl)]
    np.testing.assert_array_equal(out, jax.jit(with_sizes(expected, block, halo))(*args))
    assert resolve_impl("auto") == ("pallas" if backend.accelerator() else "xla")


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_no_halo_and_one_block_is_global_attention_with_relative_logits(impl):
    size = 4
    args, _ = random_inputs(11, size, 0, 2, size, size, 2, 4)
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
    (q, k, v, _, _), _ = random_inputs(kernel_size, 1, pad, 1, height, width, 2, depth)
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
    (q, _, _, rel_h, rel_w), _ = random_inputs(3, block, halo, 1, 4, 4, 1, depth)
    k = jnp.zeros_like(q)
    v = jnp.ones_like(q)  # inside keys carry value 1, outside keys 0: the output is the weight on the inside
    out = halo_attention_reference(q, k, v, rel_h, rel_w, block_size=block, halo_size=halo)
    logits = np.array([[q[0, 0, 0, 0] @ (rel_h[j - 0 + 1] + rel_w[i + 1]) for i in range(4)] for j in range(4)])
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    np.testing.assert_allclose(out[0, 0, 0, 0], np.full(depth, weights[1:, 1:].sum()), rtol=1e-5)
    assert weights[0].sum() > 0.01  # the padded row keeps real weight: nothing is masked


def test_shape_errors_name_the_sizes():
    args, _ = random_inputs(0, 4, 1, 1, 8, 8, 1, 4)
    q, k, v, rel_h, rel_w = args
    with pytest.raises(ValueError, match=r"H=6 and W=8 must be multiples of block_size=4"):
        halo_attention(q[:, :6], k[:, :6], v[:, :6], rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match=re.escape("rel_h must have shape (9, 4)") + ".*" + re.escape("got (7, 4)")):
        halo_attention(q, k, v, rel_h[:7], rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match=re.escape("rel_w must have shape (11, 4)") + ".*" + re.escape("got (9, 4)")):
        halo_attention(q, k, v, jnp.zeros((11, 4)), rel_w, block_size=4, halo_size=2)
    with pytest.raises(ValueError, match=re.escape("k must have q's shape (1, 8, 8, 1, 4), got (1, 8, 4, 1, 4)")):
        halo_attention(q, k[:, :, :4], v, rel_h, rel_w, block_size=4, halo_size=1)
    with pytest.raises(ValueError, match="halo_size must be a non-negative integer, got -1"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=4, halo_size=-1)
    with pytest.raises(ValueError, match=r"unknown impl 'triton'; valid choices: xla, pallas, auto"):
        halo_attention(q, k, v, rel_h, rel_w, block_size=4, halo_size=1, impl="triton")
    with pytest.raises(ValueError, match="num_warps must be one of"):
        KernelConfig(num_warps=3)


def accelerator_only(test):
    reason = "needs a GPU or TPU (run with JAX_PLATFORMS unset or =cuda)"
    return pytest.mark.hardware(pytest.mark.skipif(backend.accelerator() is None, reason=reason)(test))


@accelerator_only
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("case", [(8, 3, 2, 32, 32, 4, 16), (8, 3, 1, 16, 24, 2, 64), (10, 3, 1, 20, 20, 2, 32)])
def test_compiled_pallas_matches_reference_on_the_accelerator(case, dtype):
    block, halo, *sizes = case
    args, cotangent = random_inputs(sum(case), block, halo, *sizes, dtype=dtype)
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
        assert_close(g, g_ref, (relative_tolerance * scale, relative_tolerance), name)


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
