"""The stack differences in common/compat.py: containers of submodules and Variables, the optimizer step on either
Flax, and the one-line refusal where dm-reverb is not installed (the current stack), checked on both stacks by
standing in a missing Reverb."""

import jax
import jax.numpy as jnp
import numpy as np
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


class _Containers(nnx.Module):
    """Submodules in a list, Variables in a dict and a plain tuple of ints: [B, 2] -> [B, 1]."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.blocks = compat.List([nnx.Linear(2, 2, rngs=rngs) for _ in range(2)])
        self.tables = compat.data({"row": nnx.Param(jnp.ones((2,))), "column": nnx.Param(jnp.zeros((2,)))})
        self.head = nnx.Linear(2, 1, rngs=rngs)
        self.shape = (2, 1)

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = jax.nn.relu(block(x))
        return self.head(x * self.tables["row"].value + self.tables["column"].value)


def _paths(model: nnx.Module) -> list[str]:
    return sorted("/".join(map(str, path)) for path, _ in nnx.state(model).flat_state())


def test_containers_keep_the_same_state_paths_on_either_flax():
    model = _Containers(rngs=nnx.Rngs(0))
    assert _paths(model) == [
        "blocks/0/bias", "blocks/0/kernel", "blocks/1/bias", "blocks/1/kernel",
        "head/bias", "head/kernel", "tables/column", "tables/row",
    ]  # fmt: skip
    assert len(model.blocks) == 2 and model.shape == (2, 1)


def test_containers_survive_split_merge_and_jit():
    model = _Containers(rngs=nnx.Rngs(0))
    x = jnp.arange(6.0).reshape(3, 2)  # [B, 2]
    graphdef, state = nnx.split(model)
    np.testing.assert_allclose(nnx.merge(graphdef, state)(x), model(x))
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(model, x), model(x), rtol=1e-6)


def test_a_gradient_step_reaches_the_variables_inside_containers():
    model = _Containers(rngs=nnx.Rngs(0))
    x = jnp.ones((4, 2))  # [B, 2]
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer = compat.new_optimizer(model, optax.sgd(0.1))
    before = np.asarray(model.tables["column"].value)
    compat.apply_gradients(optimizer, model, grads)
    assert not np.allclose(model.tables["column"].value, before)


@pytest.mark.skipif(not hasattr(nnx, "List"), reason="Flax < 0.12: modules are graph nodes, not pytrees")
def test_modules_are_pytrees_that_refuse_an_unmarked_list_of_submodules():
    model = _Containers(rngs=nnx.Rngs(0))
    assert len(jax.tree.leaves(model)) == 8  # Flax's own default is left as it is: every Variable is a leaf

    class Unmarked(nnx.Module):
        def __init__(self, *, rngs: nnx.Rngs):
            self.blocks = [nnx.Linear(2, 2, rngs=rngs)]

    with pytest.raises(ValueError, match="nnx.List"):
        Unmarked(rngs=nnx.Rngs(0))


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
