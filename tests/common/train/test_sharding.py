"""Data parallelism: the same steps on 1 device and on 4 simulated CPU devices give the same losses."""

import subprocess
import sys
import textwrap

from tests.helpers import REPO, final_metrics, subprocess_env

# Runs in a fresh process: the device count is fixed when JAX starts.
SCRIPT = textwrap.dedent("""
    import json, tempfile
    import jax
    from flax import nnx
    from common.train import classification, loop, optim, sharding
    from common.train.metrics import read_metrics
    from papers.swish import config as swish_config, model as swish_model

    assert jax.device_count() == 4, jax.devices()
    config = swish_config.get_config("smoke")
    config.train.update(num_steps=3, log_every=1, checkpoint_every=1000, async_checkpoints=False)
    dataset = classification.load_dataset(config)
    losses = {}
    for n in (1, 4):
        model = swish_model.build_model(config, dataset.input_shape, dataset.num_classes, nnx.Rngs(0))
        task = loop.TrainTask(model=model, loss_fn=classification.cross_entropy_loss,
                              make_train_iterator=dataset.make_train_iterator)
        mesh = sharding.make_data_mesh(jax.devices()[:n])
        with tempfile.TemporaryDirectory() as workdir:
            loop.train(task, optim.make_optimizer(config.optimizer, 3), config.train, workdir, seed=0, mesh=mesh,
                       show_progress=False)
            losses[n] = [row["train/loss"] for row in read_metrics(workdir)]
    print(json.dumps(losses))
""")


def test_one_and_four_devices_give_the_same_loss():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    losses = final_metrics(result.stdout)
    one, four = losses["1"], losses["4"]
    assert len(one) == len(four) == 3
    for a, b in zip(one, four, strict=True):
        assert abs(a - b) < 1e-5, (one, four)
    assert one[0] != one[2], "the steps should change the loss (else the comparison proves little)"


def test_batch_not_divisible_by_devices_names_the_value():
    import jax
    import pytest

    from common.train import sharding

    mesh = sharding.make_data_mesh(jax.devices()[:1])
    sharding.check_batch_divisible(6, mesh)
    with pytest.raises(ValueError, match="batch_size=6 is not divisible by the 4 local devices"):
        sharding.check_batch_divisible(6, _FakeMesh(4))


class _FakeMesh:
    def __init__(self, n):
        import numpy as np

        self.devices = np.arange(n)
