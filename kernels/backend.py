"""The one place the repo picks a Pallas lowering, shared by every kernel package.

Pallas changed between the pinned JAX 0.4.34 and the newer JAX of accelerator machines (Triton's compiler params
moved, Mosaic GPU became the default GPU backend); kernels call `pallas_call_options` and never name a backend
themselves, so that difference lives here only.
"""

import inspect

import jax
from jax.experimental import pallas as pl

IMPLEMENTATIONS = ("xla", "pallas", "auto")


def resolve_impl(impl: str) -> str:
    """'xla' or 'pallas' for a kernel's requested impl; 'auto' is Pallas on GPU/TPU and XLA elsewhere."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown impl {impl!r}; valid choices: {', '.join(IMPLEMENTATIONS)}")
    if impl == "auto":
        return "pallas" if accelerator() is not None else "xla"
    return impl


def accelerator() -> str | None:
    """'gpu' or 'tpu' when the default device is one, else None (CPU: Pallas only in interpret mode)."""
    platform = jax.default_backend().lower()
    if platform in ("gpu", "cuda", "rocm"):
        return "gpu"
    if platform == "tpu":
        return "tpu"
    return None


def pallas_call_options(platform: str | None, config, interpret: bool) -> dict:
    """Extra keyword arguments for `pl.pallas_call`; `config` is a kernel's launch config (num_warps, num_stages).

    GPU: Triton, with num_warps/num_stages. JAX 0.4.34 keeps Triton's params in `pallas.gpu.TritonCompilerParams`;
    newer JAX has `pallas.triton.CompilerParams` and a `backend=` argument (Mosaic GPU may be the default there,
    so Triton is named explicitly). TPU: Mosaic, the only TPU backend, no options needed.
    """
    if interpret or platform != "gpu":
        return {}
    try:
        from jax.experimental.pallas import triton as pallas_triton

        params = getattr(pallas_triton, "CompilerParams", None) or pallas_triton.TritonCompilerParams
    except ImportError:  # JAX < 0.4.35
        from jax.experimental.pallas import gpu as pallas_gpu

        params = pallas_gpu.TritonCompilerParams
    options = {"compiler_params": params(num_warps=config.num_warps, num_stages=config.num_stages)}
    try:
        if "backend" in inspect.signature(pl.pallas_call).parameters:
            options["backend"] = "triton"
    except (TypeError, ValueError):  # no introspectable signature: let Pallas choose
        pass
    return options
