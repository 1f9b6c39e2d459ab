"""Halo attention (HaloNets, Vaswani et al. 2021) as a ResNet `spatial_layer`, on top of kernels/halo_attention.

The map is cut into b x b query blocks; every query of a block attends to the block's (b+2h) x (b+2h) window
("halo" h). Per head, with q = W_Q x, k = W_K x, v = W_V x (1x1 projections, no bias), q scaled by d^-1/2:

  logit(q at (y, x), key at (y', x')) = q . k + q[:d/2] . r_h[y' - y] + q[d/2:] . r_w[x' - x]
  out = sum softmax(logit) v

Choices, each for a reason:
  * Relative embeddings as the paper describes them: shared by the layer's heads, factorised into a height
    table and a width table of 2(b+h)-1 offsets, each half a head's (query/key) channels wide. The kernel adds
    two full-width [2(b+h)-1, d] tables, so each half table is zero-padded to the head width (r_h in the first
    half of the channels, r_w in the second): the kernel then computes exactly the factorised logits, and the
    layer holds the paper's (2(b+h)-1) x d_head parameters.
  * Border: keys and values outside the image are zeros and stay in the softmax, as in the paper and the kernel.
  * Map sizes that are not multiples of b: q, k and v are zero-padded at the bottom/right up to whole blocks and
    the output is cropped. The padded keys are zeros, exactly what the kernel uses outside the image, so the
    padding changes no output, only how many (cropped) queries are computed.
  * q and k may be narrower than v (`qk_features`; HaloNet's rv widens only the values). The kernel takes one
    head width, so on the kernel the narrower side is zero-padded to the wider: zero q/k channels add nothing to
    the logits and zero v channels are cropped. That padded work is real and is counted where it runs.
  * Stride 2 ("strided attention that subsamples queries like a strided convolution", keys and values at
    stride 1): the kept query of each 2x2 is its top-left pixel (even row, even column). That is the pixel the
    ResNet's strided 1x1 shortcut samples and the centre of the strided 3x3 conv (common/nn/resnet.py), so the
    residual sum adds outputs of the same pixel; and with an even b every b x b block keeps a (b/2) x (b/2) grid,
    so the kept queries tile into blocks of b/2 over the same memories. Odd sizes round up like a SAME conv.

Which code computes it (`impl`, and `HaloAttention.uses_kernel`); always the kernel package's `halo_attention`:
  * "pallas": the Pallas kernel. It takes the kept queries of a strided layer (a quarter of the logits, q
    projected on the kept pixels only), and one head width: the narrower of q/k and v is zero-padded to the wider.
  * "xla": the package's XLA path, which also takes the kept queries and q/k of their own width. No padded work,
    so this is the path `--dry_run` counts. The tests check both paths give the same outputs.
  * "auto": "pallas" where the kernel measured faster than XLA, "xla" otherwise: on TPU, and on GPU for b <= 8 in
    bfloat16/float16 at either stride (kernels/halo_attention/layout.auto_takes_kernel; an H200 ran it 1.5-2.2x
    XLA's speed forward + backward there, docs/halo_attention_gpu.md), never on CPU.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kernels.base import check_choice
from kernels.halo_attention import IMPLEMENTATIONS, auto_takes_kernel, halo_attention, num_offsets, resolve_impl


def _ceil_to(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class HaloAttention(nnx.Module):
    """Multi-head blocked local attention with halos; [N, H, W, Cin] -> [N, ceil(H/s), ceil(W/s), Cout].

    Parameters: Cin x (2 qk_features + Cout) for the projections plus the two relative tables, [2(b+h)-1,
    d_qk/2] each, shared by the heads (d_qk = qk_features / num_heads; qk_features defaults to Cout).
    `impl` ("xla" | "pallas" | "auto") is handed to the kernel; stride 2 keeps the top-left query of each 2x2
    (see the module docstring for the rule and which path computes it).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        block_size: int = 8,
        halo_size: int = 3,
        num_heads: int = 8,
        qk_features: int | None = None,
        stride: int = 1,
        impl: str = "auto",
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        qk_features = out_features if qk_features is None else qk_features
        if num_heads < 1 or out_features % num_heads or qk_features % num_heads:
            raise ValueError(
                f"out_features={out_features} and qk_features={qk_features} must split into {num_heads} heads"
            )
        if (qk_features // num_heads) % 2:
            raise ValueError(
                f"query/key head width {qk_features // num_heads} must be even (height and width table halves)"
            )
        if block_size < 1 or halo_size < 0:
            raise ValueError(f"need block_size >= 1 and halo_size >= 0, got {block_size}, {halo_size}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 2 and block_size % 2:
            raise ValueError(f"stride 2 keeps every other query of a block: block_size must be even, got {block_size}")
        check_choice("impl", impl, IMPLEMENTATIONS)
        self.block_size, self.halo_size, self.num_heads, self.stride = block_size, halo_size, num_heads, stride
        self.impl, self.dtype = impl, dtype
        self.qk_head_features = qk_features // num_heads
        self.v_head_features = out_features // num_heads

        def projection(features):
            return nnx.Linear(in_features, features, use_bias=False, dtype=dtype, rngs=rngs)

        self.query, self.key, self.value = projection(qk_features), projection(qk_features), projection(out_features)
        table_init = nnx.initializers.normal(stddev=self.qk_head_features**-0.5)
        shape = (num_offsets(block_size, halo_size), self.qk_head_features // 2)
        self.rel_h = nnx.Param(table_init(rngs.params(), shape))
        self.rel_w = nnx.Param(table_init(rngs.params(), shape))

    def kernel_tables(self, depth: int) -> tuple[jax.Array, jax.Array]:
        """The kernel's two [2(b+h)-1, depth] tables: r_h in channels [0, d_qk/2), r_w in [d_qk/2, d_qk), zeros after.

        The kernel adds q . table_h + q . table_w, which is then q[:d/2] . r_h + q[d/2:] . r_w, the paper's
        factorised logits.
        """
        half = self.qk_head_features // 2
        rel_h = jnp.pad(self.rel_h.value, ((0, 0), (0, depth - half)))
        rel_w = jnp.pad(self.rel_w.value, ((0, 0), (half, depth - 2 * half)))
        return rel_h, rel_w

    def uses_kernel(self, dtype) -> bool:
        """Whether the Pallas kernel runs (else the XLA path) on queries of `dtype`; the rule is in the module
        docstring. The kernel pads q/k and v to one width; both paths compute only the kept queries of a strided
        layer."""
        fits = functools.partial(auto_takes_kernel, block_size=self.block_size, dtype=dtype)
        return resolve_impl(self.impl, kernel_fits=fits) == "pallas"

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, in_features] -> [N, ceil(H/stride), ceil(W/stride), out_features]."""
        n, height, width, _ = x.shape
        b, s, heads = self.block_size, self.stride, self.num_heads
        d_qk, d_v = self.qk_head_features, self.v_head_features
        out_h, out_w = -(-height // s), -(-width // s)
        padded_h, padded_w = _ceil_to(height, b), _ceil_to(width, b)
        x_query = x[:, ::s, ::s]  # stride 2: the kept queries, even rows and columns
        query = self.query(x_query) * d_qk**-0.5
        kernel = self.uses_kernel(query.dtype)
        # The kernel takes one head width: the narrower of q/k and v is zero-padded up to the wider.
        qk_depth, v_depth = (max(d_qk, d_v),) * 2 if kernel else (d_qk, d_v)

        def heads_of(t, features, rows, cols, depth):
            """[N, h, w, heads * features] -> [N, rows, cols, heads, depth], zero-padded in space and channels."""
            t = t.reshape(*t.shape[:3], heads, features)
            pad = ((0, 0), (0, rows - t.shape[1]), (0, cols - t.shape[2]), (0, 0), (0, depth - features))
            return jnp.pad(t, pad)

        q_rows, q_cols = padded_h // s, padded_w // s
        q = heads_of(query, d_qk, q_rows, q_cols, qk_depth)
        k = heads_of(self.key(x), d_qk, padded_h, padded_w, qk_depth)
        v = heads_of(self.value(x), d_v, padded_h, padded_w, v_depth)
        rel_h, rel_w = (table.astype(q.dtype) for table in self.kernel_tables(qk_depth))
        out = halo_attention(
            q, k, v, rel_h, rel_w, block_size=b, halo_size=self.halo_size, impl="pallas" if kernel else "xla"
        )
        return out[:, :out_h, :out_w, :, :d_v].reshape(n, out_h, out_w, heads * d_v)


def halo_attention_layer(
    block_size: int = 8,
    halo_size: int = 3,
    num_heads: int | None = 8,
    *,
    head_features: int | None = None,
    qk_features: str = "out",
    impl: str = "auto",
    dtype: Any = None,
):
    """A ResNet `SpatialLayerFactory` that builds `HaloAttention` with these settings.

    head_features: channels per (query/key) head; when given, the number of heads follows from the width
    (HaloNet-50's 16 channels per head) and `num_heads` is ignored. qk_features: "out" (q and k as wide as the
    layer's output) or "in" (as wide as its input: HaloNet's rv then widens only the values).
    """
    if qk_features not in ("in", "out"):
        raise ValueError(f"qk_features must be 'in' or 'out', got {qk_features!r}")
    if num_heads is None and head_features is None:
        raise ValueError("give num_heads or head_features")

    def make(in_features: int, out_features: int, *, stride: int, rngs: nnx.Rngs) -> HaloAttention:
        qk = in_features if qk_features == "in" else out_features
        if head_features is not None:
            if qk % head_features:
                raise ValueError(f"{qk} query/key channels do not split into heads of {head_features}")
            heads = qk // head_features
        else:
            heads = num_heads
        return HaloAttention(
            in_features,
            out_features,
            block_size=block_size,
            halo_size=halo_size,
            num_heads=heads,
            qk_features=qk,
            stride=stride,
            impl=impl,
            dtype=dtype,
            rngs=rngs,
        )

    return make


def halo_attention_param_count(
    in_features: int,
    out_features: int,
    *,
    block_size: int,
    halo_size: int,
    num_heads: int,
    qk_features: int | None = None,
) -> int:
    """What HaloAttention holds: the q, k, v projections and two [2(b+h)-1, d_qk/2] tables."""
    qk = out_features if qk_features is None else qk_features
    return in_features * (2 * qk + out_features) + num_offsets(block_size, halo_size) * (qk // num_heads)


__all__ = [
    "HaloAttention",
    "halo_attention_layer",
    "halo_attention_param_count",
]
