"""HaloNet's speed claim on CPU: halo attention vs stand-alone (SASA) attention at the same receptive field.

Both layers see at least 3 pixels on every side of each query: SASA with its centred k = 7 window, halo
attention with halo h = 3 around b x b query blocks (b = 8, the paper's setting, and b = 4). One forward +
backward pass (gradients wrt the input and the parameters) of each layer through XLA (float32, `impl="xla"`), at
the ResNet-50 stage shapes, batch 8, 8 heads; the layers are measured one after another in the same process.
Maps that b does not divide are padded to whole blocks, as the HaloNet layer does in the models.

python -m benchmarks.run_all --only halo_attention
"""

from flax import nnx

from benchmarks.local_attention import (
    BATCH,
    KERNEL_SIZE,
    NUM_HEADS,
    STAGE_SHAPES,
    sasa_layer,
    stage_input,
    time_forward_backward,
)
from common import report
from common.nn.halo_attention import HaloAttention

HALO_SIZE = KERNEL_SIZE // 2
BLOCK_SIZES = (8, 4)


def halo_layer(channels: int, block_size: int) -> HaloAttention:
    return HaloAttention(
        channels,
        channels,
        block_size=block_size,
        halo_size=HALO_SIZE,
        num_heads=NUM_HEADS,
        impl="xla",
        rngs=nnx.Rngs(0),
    )


def markdown(shapes=STAGE_SHAPES) -> str:
    rows = []
    for size, channels in shapes:
        x = stage_input(size, channels)
        sasa = time_forward_backward(sasa_layer(channels), x)
        unfold = time_forward_backward(sasa_layer(channels, "naive"), x)
        row = [f"{size}x{size}x{channels}", f"{unfold['images_per_second']:.1f}"]
        row += [f"{sasa['images_per_second']:.1f}", f"{sasa['temp_mib']:.0f}"]
        for block_size in BLOCK_SIZES:
            halo = time_forward_backward(halo_layer(channels, block_size), x)
            vs_blockwise = halo["images_per_second"] / sasa["images_per_second"]
            vs_unfold = halo["images_per_second"] / unfold["images_per_second"]
            row += [f"{halo['images_per_second']:.1f}", f"{halo['temp_mib']:.0f}"]
            row += [f"{vs_blockwise:.2f}x", f"{vs_unfold:.2f}x"]
        rows.append(row)
    header = ["input (H x W x C)", "SASA unfold img/s", "SASA blockwise img/s", "SASA temp MiB"]
    for block_size in BLOCK_SIZES:
        header += [f"halo b={block_size} img/s", f"halo b={block_size} temp MiB"]
        header += [f"b={block_size} / SASA blockwise", f"b={block_size} / SASA unfold"]
    table = report.markdown_table(header, rows)
    return (
        "## Halo attention vs SASA (CPU, XLA path)\n\n"
        f"{table}\n\nForward + backward of one layer, batch {BATCH}, {NUM_HEADS} heads, float32: SASA "
        f"(`LocalSelfAttention`, k = {KERNEL_SIZE}, its per-pixel unfold and its blockwise kernel) vs "
        f"`HaloAttention` (h = {HALO_SIZE}, impl xla), "
        f"measured in one run on {report.machine_description()}. Temp memory: XLA's `temp_size_in_bytes`.\n"
    )


if __name__ == "__main__":
    print(markdown())
