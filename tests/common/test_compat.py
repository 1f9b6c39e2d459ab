"""The stack differences in common/compat.py: the optimizer step on either Flax, and the one-line refusal where
dm-reverb is not installed (the current stack), checked on both stacks by standing in a missing Reverb."""

import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from common import compat
from common.errors import UserError
from papers.replay_fundamentals import config as replay_config
from papers.replay_fundamentals import train as replay_train
from tests.helpers import run_main


@pytest.fixture
def reverb_missing(monkeypatch):
    monkeypatch.setattr(compat, "import_reverb", lambda: compat.MissingReverb(compat.REVERB_BACKEND_NEEDED))


def test_one_optimizer_step_moves_the_parameters_downhill():
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    optimizer = compat.new_optimizer(model, optax.sgd(0.1))
    x = jnp.ones((4, 3))  # [B, D]

    def loss_fn(m):
        return jnp.mean(m(x) ** 2)

    before = loss_fn(model)
    compat.apply_gradients(optimizer, model, nnx.grad(loss_fn)(model))
    assert loss_fn(model) < before


def test_a_missing_reverb_imports_but_refuses_on_first_use():
    reverb = compat.MissingReverb(compat.REVERB_BACKEND_NEEDED)
    with pytest.raises(UserError, match=r"replay.backend='reverb' needs dm-reverb.*replay.backend='ring'"):
        reverb.Table  # noqa: B018
    with pytest.raises(AttributeError):
        reverb.__wrapped__  # noqa: B018  introspection sees an ordinary object


def test_the_replay_paper_refuses_a_reverb_run_in_one_line(reverb_missing):
    assert not compat.has_reverb()
    config = replay_config.get_config("smoke")
    with pytest.raises(UserError) as raised:
        replay_train.check_config(config)
    assert str(raised.value) == (
        "the replay paper needs dm-reverb, which needs Python <= 3.11 and the pinned stack: make setup"
    )
    config.replay.backend = "ring"  # one process on the numpy ring buffer needs no Reverb
    replay_train.check_config(config)


@pytest.mark.slow
@pytest.mark.skipif(compat.has_reverb(), reason="dm-reverb is installed: the replay paper runs here")
def test_starting_the_replay_paper_without_reverb_exits_2_with_one_line(tmp_path):
    result = run_main(
        "replay_fundamentals",
        "--config=papers/replay_fundamentals/config.py:smoke",
        f"--workdir={tmp_path}",
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the replay paper needs dm-reverb, which needs Python <= 3.11 and the pinned stack: make setup"
    )
