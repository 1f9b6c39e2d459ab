"""The kernel base every package shares: the launch config and its extension, the input checks, the impl and
interpret decisions of kernels/backend.py (on a pretended GPU or TPU too), and the shared test base itself."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import backend, base
from tests.kernels.kernel_test_base import Case, cases, compare


@dataclasses.dataclass(frozen=True)
class BlockedConfig(base.KernelConfig):
    """What a kernel with block sizes adds: its own fields, validated after the shared ones."""

    block_rows: int = 8

    def __post_init__(self):
        super().__post_init__()
        if not base.is_power_of_two(self.block_rows):
            raise ValueError(f"block_rows must be a power of two, got {self.block_rows}")


def pretend(monkeypatch, platform):
    monkeypatch.setattr(backend, "accelerator", lambda: platform)


def test_config_is_frozen_validated_and_has_platform_defaults():
    assert [base.KernelConfig.for_platform(p).min_tile for p in ("gpu", "tpu", None)] == [16, 8, 1]
    config = base.KernelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_warps = 8
    for kwargs, message in [
        ({"num_warps": 3}, "unknown num_warps 3; valid choices: 1, 2, 4, 8, 16"),
        ({"num_stages": 0}, "num_stages must be a positive integer, got 0"),
        ({"min_tile": 12}, "min_tile must be a power of two, got 12"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            base.KernelConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown platform 'cuda'; valid choices: gpu, tpu, None"):
        base.KernelConfig.for_platform("cuda")


def test_a_kernel_extends_the_config_with_its_own_validated_fields():
    config = BlockedConfig.for_platform("gpu")
    assert isinstance(config, BlockedConfig) and (config.min_tile, config.block_rows) == (16, 8)
    with pytest.raises(ValueError, match="block_rows must be a power of two, got 6"):
        BlockedConfig(block_rows=6)
    with pytest.raises(ValueError, match="unknown num_warps"):  # the shared fields are still checked
        BlockedConfig(num_warps=5)
    launch = backend.resolve_launch(interpret=True, config_type=BlockedConfig)
    assert launch.config == BlockedConfig(min_tile=1)
    assert hash(launch) == hash(backend.resolve_launch(True, launch.config))  # a static argument of a custom VJP


def test_checks_name_the_argument_its_shape_and_what_was_expected():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=re.escape("x must be [batch, H, W], got shape (2, 3)")):
        base.check_rank("x", x, ("batch", "H", "W"))
    with pytest.raises(ValueError, match=re.escape("x must have shape (2, 4) like y, got (2, 3)")):
        base.check_shape("x", x, (2, 4), " like y")
    with pytest.raises(ValueError, match=re.escape("bias must have shape (3,), got None")):
        base.check_shape("bias", None, (3,))
    with pytest.raises(ValueError, match="x must have dtype bfloat16 like q, got float32"):
        base.check_dtype("x", x, jnp.bfloat16, " like q")
    with pytest.raises(ValueError, match="slots must hold integers, got float32"):
        base.check_integer_dtype("slots", x)
    for value, message in [(-1, "a non-negative integer, got -1"), (True, "got True"), (2.0, "got 2.0")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            base.check_integer("halo_size", value, minimum=0)
    base.check_integer("halo_size", np.int64(0), minimum=0)
    base.check_shape("x", x, (2, 3))
    base.check_rank("x", x, ("batch", "channels"))


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_auto_is_pallas_on_an_accelerator_where_the_kernel_fits_and_xla_elsewhere(monkeypatch, platform):
    pretend(monkeypatch, platform)
    on_accelerator = "pallas" if platform else "xla"
    assert backend.resolve_impl("auto") == on_accelerator
    assert backend.resolve_impl("auto", kernel_fits=False) == "xla"
    assert backend.resolve_impl("auto", kernel_fits=lambda p: p == "tpu") == ("pallas" if platform == "tpu" else "xla")
    assert backend.resolve_impl("pallas", kernel_fits=False) == "pallas"  # an explicit choice is kept
    assert backend.resolve_impl("xla") == "xla"
    with pytest.raises(ValueError, match="unknown impl 'triton'; valid choices: xla, pallas, auto"):
        backend.resolve_impl("triton")


@pytest.mark.parametrize("platform", [None, "gpu", "tpu"])
def test_pallas_is_interpreted_without_an_accelerator_and_compiled_on_one(monkeypatch, platform):
    pretend(monkeypatch, platform)
    launch = backend.resolve_launch()
    assert launch.interpret == (platform is None)
    assert launch.config == base.KernelConfig.for_platform(platform)
    interpreted = backend.resolve_launch(interpret=True)
    assert interpreted.config.min_tile == 1 and interpreted.pallas_call_options() == {"interpret": True}
    given = base.KernelConfig(num_warps=8)
    assert backend.resolve_launch(interpret=False, config=given).config is given


def test_gpu_launch_names_triton_with_the_config_warps(monkeypatch):
    pretend(monkeypatch, "gpu")
    options = backend.resolve_launch(config=base.KernelConfig(num_warps=8, num_stages=2)).pallas_call_options()
    assert options["interpret"] is False
    params = options["compiler_params"]
    assert (params.num_warps, params.num_stages) == (8, 2)
    assert options.get("backend", "triton") == "triton"


def sine(x):
    return jnp.sin(x)


def test_the_shared_check_fails_on_a_wrong_kernel():
    """compare must be able to fail: a function off by a little, and one whose gradient is zero, are caught."""
    (case,) = (param.values[0] for param in cases([(3, 4)]))
    assert isinstance(case, Case) and case.seed != Case((3, 5)).seed
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    compare(sine, sine, (x,), (1e-6, 0.0), seed=case.seed)
    with pytest.raises(AssertionError, match="output"):
        compare(lambda x: sine(x) + 1e-3, sine, (x,), (1e-6, 0.0), seed=case.seed)
    with pytest.raises(AssertionError, match="dx"):
        compare(lambda x: sine(jax.lax.stop_gradient(x)), sine, (x,), (1e-6, 0.0), seed=case.seed)
    with pytest.raises(AssertionError, match="dx of the expected function is all zeros"):
        compare(sine, lambda x: sine(jax.lax.stop_gradient(x)), (x,), (1e-6, 0.0), seed=case.seed)
