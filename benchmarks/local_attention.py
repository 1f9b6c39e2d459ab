"""Local self-attention kernels: blockwise (haloed query blocks) vs the per-pixel unfold, side by side.

At the ResNet-50 stage shapes (batch 8, k = 7, 8 heads) it measures one forward + backward pass of
`LocalSelfAttention` (gradients wrt the input and the parameters): throughput in images/s (median of a few
timed calls after compilation) and peak temporary memory, read from the compiled executable's memory analysis
(`temp_size_in_bytes`: the buffers XLA allocates beyond inputs and outputs).

python -m benchmarks.run_all --only local_attention
"""

import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from common import report
from common.nn.local_attention import LocalSelfAttention, default_block_size

# (height = width, channels) of the 3x3 conv inputs of the four ResNet-50 stages at 224 px.
STAGE_SHAPES = ((56, 64), (28, 128), (14, 256), (7, 512))
BATCH, KERNEL_SIZE, NUM_HEADS = 8, 7, 8
BLOCK_SIZE = None  # None: the layer's default rule (`default_block_size`), what the models use


def compiled_forward_backward(layer: nnx.Module, x: jax.Array):
    """The layer's loss (sum of squared outputs) and gradients wrt its parameters and x [N, H, W, C], compiled."""
    graphdef, params = nnx.split(layer)

    def loss(params, x):
        return jnp.sum(nnx.merge(graphdef, params)(x) ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(params, x).compile(), (params, x)


def compiled_forward(layer: nnx.Module, x: jax.Array):
    """The layer's output for x [N, H, W, C] (parameters as an argument, not constants), compiled."""
    graphdef, params = nnx.split(layer)

    def forward(params, x):
        return nnx.merge(graphdef, params)(x)

    return jax.jit(forward).lower(params, x).compile(), (params, x)


def _time_compiled(compiled, args, batch: int, repeats: int) -> dict:
    """Images/s (median of `repeats` calls after a warm-up) and XLA's temp memory of a compiled call."""
    memory = compiled.memory_analysis()
    temp_bytes = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
    jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return {"images_per_second": batch / statistics.median(times), "temp_mib": (temp_bytes or 0) / 2**20}


def time_forward_backward(layer: nnx.Module, x: jax.Array, repeats: int = 3) -> dict:
    """Images/s and temp memory of one forward + backward (gradients wrt the parameters and x)."""
    return _time_compiled(*compiled_forward_backward(layer, x), x.shape[0], repeats)


def time_forward(layer: nnx.Module, x: jax.Array, repeats: int = 3) -> dict:
    """Images/s and temp memory of one forward pass."""
    return _time_compiled(*compiled_forward(layer, x), x.shape[0], repeats)


def sasa_layer(channels: int, implementation: str = "blockwise") -> LocalSelfAttention:
    return LocalSelfAttention(
        channels,
        channels,
        kernel_size=KERNEL_SIZE,
        num_heads=NUM_HEADS,
        block_size=BLOCK_SIZE,
        implementation=implementation,
        rngs=nnx.Rngs(0),
    )


def stage_input(size: int, channels: int) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(0), (BATCH, size, size, channels))


def measure(implementation: str, size: int, channels: int, repeats: int = 3) -> dict:
    return time_forward_backward(sasa_layer(channels, implementation), stage_input(size, channels), repeats)


def markdown(shapes=STAGE_SHAPES) -> str:
    rows = []
    for size, channels in shapes:
        results = {impl: measure(impl, size, channels) for impl in ("blockwise", "naive")}
        blockwise, naive = results["blockwise"], results["naive"]
        block = BLOCK_SIZE or default_block_size(KERNEL_SIZE, size, size)
        rows.append(
            [
                f"{size}x{size}x{channels}",
                block,
                f"{blockwise['images_per_second']:.1f}",
                f"{naive['images_per_second']:.1f}",
                f"{blockwise['temp_mib']:.0f}",
                f"{naive['temp_mib']:.0f}",
                f"{naive['temp_mib'] / max(blockwise['temp_mib'], 1e-9):.1f}x",
            ]
        )
    table = report.markdown_table(
        [
            "input (H x W x C)",
            "query block",
            "blockwise img/s",
            "unfold img/s",
            "blockwise temp MiB",
            "unfold temp MiB",
            "memory saved",
        ],
        rows,
    )
    return (
        "## Local self-attention: blockwise vs per-pixel unfold\n\n"
        f"{table}\n\nForward + backward of one `LocalSelfAttention` layer (common/nn/local_attention.py), batch "
        f"{BATCH}, k = {KERNEL_SIZE}, {NUM_HEADS} heads, b x b query blocks (b from `default_block_size`), float32, "
        f"on {report.machine_description()}. Temp memory: XLA's `temp_size_in_bytes` of the compiled step."
    )
