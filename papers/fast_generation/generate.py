"""Generates images from a trained PixelCNN++ checkpoint and saves a PNG grid.

python -m papers.fast_generation.generate --workdir=workdirs/fast_generation/default \
    [--config=papers/fast_generation/config.py:default] [--config.generate.batch_size=N] \
    [--config.generate.method=cached|naive]

generate.method: "cached" (the default: common/nn/cached_pixelcnn.py, each layer's output computed once) or
"naive" (one full forward pass per pixel, the paper's baseline); with the same seed both draw the same images.
Writes <workdir>/samples/<method>.png (the images side by side in a near-square grid, 2x upscaled) and
<workdir>/samples/generation.json: the method, the checkpoint step, the batch, the seconds the run took (after
compilation) and images per second.
"""

import json
import math
import os
import time

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict
from PIL import Image

from common import app
from common.data import images
from common.errors import WorkdirError
from common.nn import cached_pixelcnn, pixelcnn
from common.registry import lookup
from common.train import checkpoint
from papers.fast_generation import model

# generate.method -> make_sampler(model, batch) -> run(key) -> (images, params)
SAMPLERS = {"naive": pixelcnn.make_naive_sampler, "cached": cached_pixelcnn.make_cached_sampler}


def sampler_for(method: str):
    """The sampler factory named by config.generate.method (an error lists the valid ones)."""
    return lookup(SAMPLERS, method, "generation method")


def restore_model(config: ConfigDict, workdir: str, image_shape) -> tuple[pixelcnn.PixelCNNPlusPlus, int]:
    """The model of the latest checkpoint in workdir (EMA weights if config.generate.ema) and its step."""
    trained = model.build_model(config, image_shape, nnx.Rngs(config.seed))
    try:
        step = checkpoint.restore_weights(workdir, trained, ema=bool(config.generate.ema))
    except FileNotFoundError as error:
        raise WorkdirError(f"{error} (train with papers.fast_generation.main)") from None
    return trained, step


def image_grid(pictures: np.ndarray, upscale: int = 2) -> np.ndarray:
    """uint8 [N, H, W, C] -> one image [rows * (H + 1) - 1, cols * (W + 1) - 1, C] with 1-pixel white gaps."""
    n, height, width, channels = pictures.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (height + 1) - 1, cols * (width + 1) - 1, channels), 255, np.uint8)
    for index, picture in enumerate(pictures):
        r, c = divmod(index, cols)
        grid[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = picture
    return grid.repeat(upscale, axis=0).repeat(upscale, axis=1)


def save_png(path: str, picture: np.ndarray) -> None:
    """uint8 [H, W, 1 or 3] -> PNG (grey or RGB)."""
    Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(path)


def generate_from_checkpoint(config: ConfigDict, workdir: str, image_shape) -> dict:
    """Samples config.generate.batch_size images from the latest checkpoint with config.generate.method; writes
    the grid and the report."""
    gen = config.generate
    make_sampler = sampler_for(gen.method)
    trained, step = restore_model(config, workdir, image_shape)
    run = make_sampler(trained, gen.batch_size)
    key = jax.random.key(gen.seed)
    start = time.perf_counter()
    jax.block_until_ready(run(key))  # compiles, then the timed run below
    compile_and_run = time.perf_counter() - start
    start = time.perf_counter()
    pictures, _ = jax.block_until_ready(run(key))
    seconds = time.perf_counter() - start
    out_dir = os.path.join(workdir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    save_png(os.path.join(out_dir, f"{gen.method}.png"), image_grid(np.asarray(pictures, np.uint8)))
    report = {
        "method": gen.method,
        "checkpoint_step": step,
        "batch": gen.batch_size,
        "seconds": seconds,
        "compile_seconds": compile_and_run - seconds,
        "images_per_second": gen.batch_size / seconds,
    }
    with open(os.path.join(out_dir, "generation.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"{gen.method}: {gen.batch_size} images in {seconds:.2f} s", flush=True)
    return report


def main(argv) -> None:
    run = app.start(argv, write_config=False)  # the workdir's config.json is the training run's
    config = run.config
    image_shape, _ = images.dataset_shapes(config.dataset.name)
    print(json.dumps(generate_from_checkpoint(config, run.workdir, image_shape)))


if __name__ == "__main__":
    app.define_flags(__file__)
    app.run(main)
