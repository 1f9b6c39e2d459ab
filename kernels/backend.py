"""The one place the repo decides how a kernel runs, shared by every kernel package: which implementation an
`impl` name means, whether Pallas is interpreted or compiled, and which Pallas lowering compiles it.

Pallas changed between the pinned JAX 0.4.34 and the newer JAX of accelerator machines (Triton's compiler params
moved, Mosaic GPU became the default GPU backend); kernels pass `Launch.pallas_call_options()` to `pl.pallas_call`
and never name a backend themselves, so that difference lives here only.
"""

import dataclasses
import inspect
from collections.abc import Callable

import jax
from jax.experimental import pallas as pl

from kernels.base import KernelConfig, check_choice

IMPLEMENTATIONS = ("xla", "pallas", "auto")


def accelerator() -> str | None:
    """'gpu' or 'tpu' when the default device is one, else None (CPU: Pallas only in interpret mode)."""
    platform = jax.default_backend().lower()
    if platform in ("gpu", "cuda", "rocm"):
        return "gpu"
    if platform == "tpu":
        return "tpu"
    return None


def resolve_impl(impl: str, *, kernel_fits: bool | Callable[[str], bool] = True) -> str:
    """'xla' or 'pallas' for a requested impl; 'auto' is Pallas on GPU/TPU where the kernel fits, XLA elsewhere.

    kernel_fits: whether the kernel suits this call, or a function of the platform ('gpu' | 'tpu') that says so
    (tiles it cannot lay out, work it would waste). Only "auto" asks it; an explicit "pallas" is kept.
    """
    check_choice("impl", impl, IMPLEMENTATIONS)
    if impl != "auto":
        return impl
    platform = accelerator()
    if platform is None:
        return "xla"
    fits = kernel_fits(platform) if callable(kernel_fits) else kernel_fits
    return "pallas" if fits else "xla"


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a Pallas kernel runs: the machine's accelerator, interpreted or compiled, and its launch config.

    Hashable, so a kernel can keep it in the static arguments of its custom VJP.
    """

    platform: str | None
    interpret: bool
    config: KernelConfig

    def pallas_call_options(self) -> dict:
        """Keyword arguments for `pl.pallas_call`: `interpret`, and the lowering's compiler params when compiled.

        GPU: Triton, with num_warps/num_stages. JAX 0.4.34 keeps Triton's params in
        `pallas.gpu.TritonCompilerParams`; newer JAX has `pallas.triton.CompilerParams` and a `backend=` argument
        (Mosaic GPU may be the default there, so Triton is named explicitly). TPU: Mosaic, the only TPU backend,
        no options needed.
        """
        options = {"interpret": self.interpret}
        if self.interpret or self.platform != "gpu":
            return options
        try:
            from jax.experimental.pallas import triton as pallas_triton

            params = getattr(pallas_triton, "CompilerParams", None) or pallas_triton.TritonCompilerParams
        except ImportError:  # JAX < 0.4.35
            from jax.experimental.pallas import gpu as pallas_gpu

            params = pallas_gpu.TritonCompilerParams
        options["compiler_params"] = params(num_warps=self.config.num_warps, num_stages=self.config.num_stages)
        try:
            if "backend" in inspect.signature(pl.pallas_call).parameters:
                options["backend"] = "triton"
        except (TypeError, ValueError):  # no introspectable signature: let Pallas choose
            pass
        return options


def resolve_launch(
    interpret: bool | None = None, config: KernelConfig | None = None, config_type: type[KernelConfig] = KernelConfig
) -> Launch:
    """interpret=None interprets exactly when there is no GPU/TPU; config=None takes `config_type`'s defaults for
    the platform it runs on (the interpreter's when interpreting, even on a GPU)."""
    platform = accelerator()
    if interpret is None:
        interpret = platform is None
    if config is None:
        config = config_type.for_platform(None if interpret else platform)
    return Launch(platform, bool(interpret), config)
