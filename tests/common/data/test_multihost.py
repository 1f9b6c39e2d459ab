"""Multi-host data: two real JAX processes on CPU (a localhost coordinator, gloo collectives), each reading its own
shard of the data, and the global batch they assemble; plus the per-process slicing checked in one process."""

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from common.data import audio, core, images
from common.data.builders import espeak_speech_local
from tests.helpers import REPO, subprocess_env

# Process `process_id` of 2, two CPU devices each: a 4-device data mesh. Saves what it read and what was assembled.
WORKER = textwrap.dedent("""
    import itertools, json, os, sys
    import jax
    import numpy as np

    port, process_id, data_dir, out, with_audio = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    from jax.experimental import multihost_utils
    from common import report
    from common.data import audio, images
    from common.train import metrics, sharding

    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    ds = images.load_image_dataset("digits_local", batch_size=100, eval_batch_size=64, augment="flip_crop", seed=3,
                                   data_dir=data_dir)
    mesh = sharding.make_data_mesh()
    saved = {}
    for step, batch in enumerate(itertools.islice(ds.make_train_iterator(12), 3)):
        global_batch = sharding.shard_batch(batch, mesh)
        assert global_batch["image"].shape == (100, 8, 8, 1)
        saved[f"local_image_{step}"] = batch["image"]
        saved[f"local_label_{step}"] = batch["label"]
        saved[f"global_image_{step}"] = multihost_utils.process_allgather(global_batch["image"], tiled=True)
        saved[f"global_label_{step}"] = multihost_utils.process_allgather(global_batch["label"], tiled=True)
        saved[f"mean_{step}"] = np.asarray(jax.jit(lambda b: b["image"].mean())(global_batch))
    eval_batches = list(ds.make_eval_iterator())
    saved["eval_label"] = np.concatenate([b["label"][b["mask"] > 0] for b in eval_batches])
    saved["eval_batches"] = np.asarray(len(eval_batches))
    if with_audio == "yes":  # windows per utterance vary: the processes agree on the number of eval batches
        speech = audio.load_audio_dataset(TINY, batch_size=2, segment_length=5000, data_dir=data_dir)
        speech_batches = list(speech.make_eval_iterator())
        saved["speech_eval_batches"] = np.asarray(len(speech_batches))
        saved["speech_eval_targets"] = np.asarray(sum(b["mask"].sum() for b in speech_batches))
        saved["speech_real_batches"] = np.asarray(sum(bool(b["mask"].any()) for b in speech_batches))

    writer = metrics.MetricWriter(os.path.join(out, "workdir"), tensorboard=False)
    writer.write(1, {"train/loss": float(process_id)})
    report.replace_block(os.path.join(out, "README.md"), "result", f"written by process {process_id}")
    np.savez(os.path.join(out, f"process_{process_id}.npz"), **saved)
    jax.distributed.shutdown()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


TINY = "espeak_speech_local/tiny"
HAVE_ESPEAK = all(shutil.which(program) for program in espeak_speech_local.REQUIRED_PROGRAMS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """digits_local (and the tiny speech corpus, where espeak-ng is installed) prepared before the processes start."""
    path = str(tmp_path_factory.mktemp("tfds"))
    images.get_builder("digits_local", path)
    if HAVE_ESPEAK:
        audio.get_speech_builder(TINY, path)
    return path


@pytest.fixture(scope="module")
def two_processes(data_dir, tmp_path_factory) -> dict:
    """What each of two JAX processes read and assembled: {"out": dir, 0: npz, 1: npz}."""
    out = str(tmp_path_factory.mktemp("multihost"))
    port = str(free_port())
    with_audio = "yes" if HAVE_ESPEAK else "no"
    env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER.replace("TINY", repr(TINY)), port, str(i), data_dir, out, with_audio],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [worker.communicate(timeout=240)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for i, worker in enumerate(workers):
        assert worker.returncode == 0, f"process {i} failed:\n{logs[i][-4000:]}"
    return {"out": out, **{i: np.load(os.path.join(out, f"process_{i}.npz")) for i in range(2)}}


@pytest.mark.slow
def test_two_processes_read_disjoint_shards_and_assemble_one_global_batch(two_processes, data_dir):
    first, second = two_processes[0], two_processes[1]
    for step in range(3):
        local = [first[f"local_image_{step}"], second[f"local_image_{step}"]]
        assert local[0].shape == local[1].shape == (50, 8, 8, 1)
        rows = [{row.tobytes() for row in images} for images in local]
        assert len(rows[0]) == len(rows[1]) == 50 and not rows[0] & rows[1]
        # The global array is process 0's rows, then process 1's, and both processes see all of it.
        np.testing.assert_array_equal(first[f"global_image_{step}"], np.concatenate(local))
        np.testing.assert_array_equal(second[f"global_image_{step}"], first[f"global_image_{step}"])
        np.testing.assert_array_equal(
            first[f"global_label_{step}"], np.concatenate([first[f"local_label_{step}"], second[f"local_label_{step}"]])
        )
        # A jitted reduction over the global array sees the whole global batch.
        np.testing.assert_allclose(first[f"mean_{step}"], np.concatenate(local).mean(), rtol=1e-5)
        np.testing.assert_array_equal(first[f"mean_{step}"], second[f"mean_{step}"])

    # Each process read what the pipeline gives its shard, which one process can rebuild batch for batch.
    for index, process in enumerate((first, second)):
        ds = images.load_image_dataset(
            "digits_local",
            batch_size=100,
            eval_batch_size=64,
            augment="flip_crop",
            seed=3,
            data_dir=data_dir,
            shard=core.ProcessShard(index, 2),
        )
        for step, batch in enumerate(itertools.islice(ds.make_train_iterator(12), 3)):
            np.testing.assert_array_equal(process[f"local_image_{step}"], batch["image"])

    # Eval: as many batches in both processes (the 180 + 180 examples fill 6 local batches of 32 each); together
    # they hold the eval split once.
    assert int(first["eval_batches"]) == int(second["eval_batches"]) == 6
    whole = images.load_image_dataset("digits_local", batch_size=100, eval_batch_size=64, data_dir=data_dir)
    whole_labels = np.concatenate([b["label"][b["mask"] > 0] for b in whole.make_eval_iterator()])
    assert len(first["eval_label"]) == len(second["eval_label"]) == 180
    assert sorted(np.concatenate([first["eval_label"], second["eval_label"]])) == sorted(whole_labels)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng or bible is not on PATH: `make data` installs them")
def test_processes_agree_on_the_number_of_speech_eval_batches(two_processes, data_dir):
    """Each process holds 2 of the 4 test utterances, cut into a number of windows that depends on their lengths."""
    first, second = two_processes[0], two_processes[1]
    real = sorted(int(process["speech_real_batches"]) for process in (first, second))
    assert real[0] < real[1], "the shards should need different numbers of batches (else this proves little)"
    assert int(first["speech_eval_batches"]) == int(second["speech_eval_batches"]) == real[1]
    whole = audio.load_audio_dataset(TINY, batch_size=2, segment_length=5000, data_dir=data_dir)
    whole_targets = sum(b["mask"].sum() for b in whole.make_eval_iterator())
    assert float(first["speech_eval_targets"]) + float(second["speech_eval_targets"]) == whole_targets
    assert float(first["speech_eval_targets"]) > 0 and float(second["speech_eval_targets"]) > 0


@pytest.mark.slow
def test_only_process_zero_writes_metrics_and_reports(two_processes):
    out = two_processes["out"]
    with open(os.path.join(out, "workdir", "metrics.jsonl")) as f:
        assert [json.loads(line) for line in f] == [{"step": 1, "train/loss": 0.0}]
    with open(os.path.join(out, "README.md")) as f:
        text = f.read()
    assert "written by process 0" in text and "process 1" not in text


# ---------------------------------------------------------------------------------------------------------------
# The slicing, in one process


def test_shards_split_the_data_disjointly_and_keep_the_global_positions(data_dir):
    """Shards of 2 are disjoint parts of each epoch; augmentation seeds follow the global position, so process 1's
    first row is augmented as row 50 of the global batch, not as row 0."""
    shards = [
        images.load_image_dataset("digits_local", batch_size=100, data_dir=data_dir, shard=core.ProcessShard(i, 2))
        for i in range(2)
    ]
    assert [ds.steps_per_epoch for ds in shards] == [14, 14]
    epochs = [list(itertools.islice(ds.make_train_iterator(0), 14)) for ds in shards]
    seen = [{row.tobytes() for batch in epoch for row in batch["image"]} for epoch in epochs]
    assert len(seen[0]) == len(seen[1]) == 700 and not seen[0] & seen[1]
    # Resuming works per shard, as for one process.
    straight = list(itertools.islice(shards[1].make_train_iterator(0), 16))[15]
    np.testing.assert_array_equal(next(shards[1].make_train_iterator(15))["image"], straight["image"])


def test_one_shard_is_the_unsharded_pipeline(data_dir):
    implicit = images.load_image_dataset("digits_local", batch_size=64, augment="flip_crop", data_dir=data_dir)
    explicit = images.load_image_dataset(
        "digits_local", batch_size=64, augment="flip_crop", data_dir=data_dir, shard=core.ProcessShard(0, 1)
    )
    for a, b in zip(
        itertools.islice(implicit.make_train_iterator(3), 2), explicit.make_train_iterator(3), strict=False
    ):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_global_batch_must_divide_between_processes(data_dir):
    with pytest.raises(ValueError, match="batch_size=99 is not divisible by the 2 processes"):
        images.load_image_dataset("digits_local", batch_size=99, data_dir=data_dir, shard=core.ProcessShard(1, 2))
    with pytest.raises(ValueError, match="eval_batch_size=33 is not divisible by the 2 processes"):
        images.load_image_dataset(
            "digits_local", batch_size=100, eval_batch_size=33, data_dir=data_dir, shard=core.ProcessShard(0, 2)
        )
    with pytest.raises(ValueError, match=r"process shard index must be in \[0, 2\), got 2"):
        core.ProcessShard(2, 2)


def test_uneven_eval_shards_pad_with_whole_empty_batches(data_dir):
    """360 eval examples over 11 processes: 33 for the first 8, 32 for the last 3. With 32 per local batch, the
    first shards need 2 batches, so the last ones add a second batch of padding only."""
    first, last = (
        list(
            images.load_image_dataset(
                "digits_local", batch_size=110, eval_batch_size=352, data_dir=data_dir, shard=core.ProcessShard(i, 11)
            ).make_eval_iterator()
        )
        for i in (0, 10)
    )
    assert len(first) == len(last) == 2
    assert [b["mask"].sum() for b in first] == [32, 1] and [b["mask"].sum() for b in last] == [32, 0]
    assert not last[1]["image"].any() and last[1]["image"].shape == (32, 8, 8, 1)
