"""Generates speech from a trained checkpoint with the naive and the cached generator, and saves wav files.

python -m papers.fast_wavenet.generate --workdir=workdirs/fast_wavenet/default \
    [--config=papers/fast_wavenet/config.py:default] [--config.generate.methods=fast,] [--config.generate.num_samples=N]

Writes <workdir>/samples/<method>_<sequence>.wav (16-bit PCM, 16 kHz, decoded mu-law) and
<workdir>/samples/generation.json: per method the seconds and samples per second (after compilation), and, when
both methods ran, the largest logit difference between them and the fraction of identical samples (same key).
"""

import json
import os
import time
import wave

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from common import app
from common.data import audio
from common.nn import wavenet
from common.train import checkpoint
from papers.fast_wavenet import model


def restore_model(config: ConfigDict, workdir: str, num_classes: int, num_speakers: int) -> tuple[nnx.Module, int]:
    """The model of the latest checkpoint in workdir (the weights `common.train.loop.train` saved) and its step."""
    trained = model.build_model(config, num_classes, num_speakers, nnx.Rngs(config.seed))
    try:
        step = checkpoint.restore_weights(workdir, trained)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error} (train with papers.fast_wavenet.main)") from None
    return trained, step


def write_wav(path: str, codes: np.ndarray, sample_rate: int) -> None:
    """codes int [T] mu-law -> 16-bit mono PCM wav."""
    pcm = np.clip(np.round(audio.mu_law_decode(np.asarray(codes)) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())


def generate_from_checkpoint(config: ConfigDict, workdir: str, num_classes: int, num_speakers: int) -> dict:
    """Runs every method of config.generate on the latest checkpoint; writes the wavs and generation.json."""
    gen = config.generate
    trained, step = restore_model(config, workdir, num_classes, num_speakers)
    batch = gen.batch_size
    speaker = jnp.arange(batch, dtype=jnp.int32) % num_speakers if trained.num_speakers else None
    key = jax.random.key(gen.seed)
    out_dir = os.path.join(workdir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    report: dict = {"checkpoint_step": step, "batch": batch, "num_samples": gen.num_samples}
    results = {}
    for method in gen.methods:
        run = wavenet.make_generator(
            trained,
            method=method,
            batch=batch,
            num_samples=gen.num_samples,
            speaker=speaker,
            temperature=gen.temperature,
            impl=gen.impl,
        )
        start = time.perf_counter()
        codes, logits = jax.block_until_ready(run(key))
        seconds = time.perf_counter() - start
        results[method] = (np.asarray(codes), np.asarray(logits))
        report[f"{method}_seconds"] = seconds
        report[f"{method}_samples_per_second"] = batch * gen.num_samples / seconds
        for i, sequence in enumerate(results[method][0]):
            write_wav(os.path.join(out_dir, f"{method}_{i}.wav"), sequence, audio.SAMPLE_RATE)
        print(f"{method}: {batch} x {gen.num_samples} samples in {seconds:.2f} s", flush=True)
    if {"naive", "fast"} <= set(results):
        (naive_codes, naive_logits), (fast_codes, fast_logits) = results["naive"], results["fast"]
        report["max_abs_logit_diff"] = float(np.abs(naive_logits - fast_logits).max())
        report["identical_sample_fraction"] = float((naive_codes == fast_codes).mean())
        report["speedup"] = report["naive_seconds"] / report["fast_seconds"]
    with open(os.path.join(out_dir, "generation.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def main(argv) -> None:
    run = app.start(argv, write_config=False)  # the workdir's config.json is the training run's
    config = run.config
    dataset = audio.load_audio_dataset(
        config.dataset.name, batch_size=1, segment_length=16, data_dir=config.dataset.data_dir
    )
    report = generate_from_checkpoint(config, run.workdir, dataset.num_classes, dataset.num_speakers)
    print(json.dumps(report))


if __name__ == "__main__":
    app.define_flags(__file__)
    app.run(main)
