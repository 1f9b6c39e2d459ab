"""The public entry point: one function, the inputs checked once, the implementation picked by name."""

import jax

from kernels.backend import resolve_impl
from kernels.halo_attention import layout, pallas
from kernels.halo_attention.reference import halo_attention_reference


def halo_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    rel_h: jax.Array,
    rel_w: jax.Array,
    *,
    block_size: int,
    halo_size: int,
    impl: str = "auto",
    precision: str = "highest",
) -> jax.Array:
    """Blocked local attention with halos: q, k, v [N, H, W, heads, d] -> [N, H, W, heads, d].

    Each b x b query block attends to the (b+2h) x (b+2h) window around it; for a query at (y, x) and a key at
    (y', x') the logit is q.k + q.rel_h[y'-y+b+h-1] + q.rel_w[x'-x+b+h-1] (rel_h, rel_w [2(b+h)-1, d]; the caller
    scales q). Keys and values outside the image are zeros and are not masked. H and W must be multiples of b.
    Both paths take the kept queries of a strided layer, q [N, H/2, W/2, heads, d] (even rows and columns); the
    XLA path also takes v of its own width dv (layout.check_inputs), the kernel does not, so "auto" takes XLA then.
    impl: "xla" (pure jnp), "pallas" (the kernel; interpreted on CPU) or "auto" (Pallas on TPU, and on GPU where it
    measured faster than XLA: b <= 8 in bfloat16/float16, `layout.auto_takes_kernel`; XLA elsewhere).
    precision: "highest" (default: float32 products, the paths agree to ~1e-6) or "default" (the platform's
    choice: TF32 tensor cores for float32 on recent NVIDIA GPUs, faster and ~1e-3 relative); other dtypes ignore it.
    """
    layout.check_inputs(q, k, v, rel_h, rel_w, block_size, halo_size)
    layout.check_precision(precision)
    fits = layout.kernel_fits(q, k, v)
    choice = resolve_impl(
        impl, kernel_fits=lambda platform: fits and layout.auto_takes_kernel(platform, block_size, q.dtype)
    )
    if choice == "xla":
        return halo_attention_reference(
            q, k, v, rel_h, rel_w, block_size=block_size, halo_size=halo_size, precision=precision
        )
    if not fits:
        raise ValueError(f"the Pallas kernel takes v of k's shape {k.shape}, got v {v.shape} (dv != d: use impl='xla')")
    return pallas.halo_attention_pallas(
        q, k, v, rel_h, rel_w, block_size=block_size, halo_size=halo_size, precision=precision
    )
