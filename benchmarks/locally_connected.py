"""Low-rank locally connected layer: one convolution with K * Cout filters vs K separate convolutions vs dense LC.

The LRLC layer (common/nn/locally_connected.py) computes its K basis responses as one convolution with K * Cout
filters and combines them per position. The same function written as K separate Cout-filter convolutions, each
weighted by its combining-weight map and summed, is the direct reading of the paper's formula; the dense LC layer
(its own kernel at every position) is what LRLC approximates. All three run jitted, float32, at the paper's small
network's shapes (3x3, stride 1, VALID), forward and forward + backward (gradients wrt the input and the parameters,
loss = sum of squared outputs), interleaved call by call in one process; the ratios are measured side by side.

python -m benchmarks.run_all --only locally_connected
"""

import os
import statistics
import time

import jax
import numpy as np
from flax import nnx

from benchmarks.local_attention import compiled_forward, compiled_forward_backward
from common import report
from common.nn.locally_connected import LocallyConnected2D, LowRankLocallyConnected2D

BATCH = 8
# (input side, channels in = out, rank K): the 26x26x64 input of the small network's second layer.
SHAPES = ((26, 64, 1), (26, 64, 4), (26, 64, 16))
PASSES = {"forward": compiled_forward, "forward + backward": compiled_forward_backward}


class SeparateConvolutions(nnx.Module):
    """The LRLC function as K separate convolutions (one per basis), each scaled by its weight map, then summed."""

    def __init__(self, lrlc: LowRankLocallyConnected2D):
        self.lrlc = lrlc

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [N, H, W, Cin] -> [N, H', W', Cout], equal to self.lrlc(x)."""
        layer, cout = self.lrlc, self.lrlc.out_features
        weights = layer.combining_weights(x)
        y = 0.0
        for k in range(layer.rank):
            response = jax.lax.conv_general_dilated(
                x,
                layer.bases.value[..., k * cout : (k + 1) * cout],
                window_strides=(layer.geometry.stride,) * 2,
                padding=layer.geometry.padding,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            y = y + response * weights[..., k, None]
        y = y + sum(table.value for table in layer.spatial_bias.values())
        return y + layer.channel_bias.value


def layers_at(size: int, channels: int, rank: int) -> dict[str, nnx.Module]:
    lrlc = LowRankLocallyConnected2D(channels, channels, 3, input_size=size, rank=rank, rngs=nnx.Rngs(0))
    dense = LocallyConnected2D(channels, channels, 3, input_size=size, rngs=nnx.Rngs(0))
    return {"lrlc": lrlc, "separate": SeparateConvolutions(lrlc), "lc": dense}


def interleaved_images_per_second(calls: dict, batch: int, rounds: int) -> dict[str, float]:
    """name -> images/s of a compiled call: median over `rounds` rounds, each timing every call once in turn
    (so a change in the shared machine's load hits all of them alike), after one warm-up call each."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for compiled, args in calls.values():
        jax.block_until_ready(compiled(*args))
    for _ in range(rounds):
        for name, (compiled, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(values) for name, values in times.items()}


def markdown(shapes=SHAPES, batch: int = BATCH, repeats: int = 9) -> str:
    started, load = time.perf_counter(), os.getloadavg()[0]
    rows = []
    for size, channels, rank in shapes:
        layers = layers_at(size, channels, rank)
        x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, channels))
        np.testing.assert_allclose(layers["lrlc"](x), layers["separate"](x), rtol=1e-4, atol=1e-4)
        for pass_name, compile_pass in PASSES.items():
            calls = {name: compile_pass(layer, x) for name, layer in layers.items()}
            rate = interleaved_images_per_second(calls, batch, repeats)
            rows.append(
                [
                    f"{size}x{size}x{channels}",
                    rank,
                    pass_name,
                    f"{rate['lrlc']:.1f}",
                    f"{rate['separate']:.1f}",
                    f"{rate['lc']:.1f}",
                    f"{rate['lrlc'] / rate['separate']:.2f}x",
                    f"{rate['lrlc'] / rate['lc']:.2f}x",
                ]
            )
    table = report.markdown_table(
        [
            "input (H x W x C)",
            "K",
            "pass",
            "LRLC img/s",
            "K separate convs img/s",
            "dense LC img/s",
            "LRLC speed vs K convs",
            "LRLC speed vs dense LC",
        ],
        rows,
    )
    return (
        "## Low-rank locally connected layer: one K * Cout convolution vs K convolutions vs dense LC\n\n"
        f"{table}\n\n3x3 kernels, stride 1, VALID, C -> C channels, row + column softmax combining weights, batch "
        f"{batch}, float32; images/s are the median of {repeats} rounds that time the three layers in turn, after "
        "compilation (a ratio above 1: LRLC is faster). The dense LC layer holds one 3x3xCxC kernel per output "
        "position. Measured by "
        f"`python -m benchmarks.run_all --only locally_connected` on {report.machine_description()} in "
        f"{(time.perf_counter() - started) / 60:.1f} min (1-minute load average {load:.1f} at the start: other jobs "
        "shared the cores, so single ratios carry noise)."
    )
