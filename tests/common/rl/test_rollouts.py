"""Batched on-policy rollouts: shapes for discrete and continuous tasks, reproducible under a seed, and the
errors for an unknown environment or a missing simulator."""

import sys

import numpy as np
import pytest

from common.registry import UnknownNameError
from common.rl.environments import make_environment
from common.rl.rollouts import ParticleRollouts


def _lean_left_or_right(observations, t):
    """A deterministic CartPole controller: push towards the pole's lean. [P, E, 4] -> [P, E]."""
    del t
    return (observations[..., 2] > 0).astype(np.int32)


def test_rollouts_are_reproducible_under_a_seed():
    first = ParticleRollouts("cartpole", num_policies=2, envs_per_policy=3, steps=30, seed=7, max_episode_steps=20)
    again = ParticleRollouts("cartpole", num_policies=2, envs_per_policy=3, steps=30, seed=7, max_episode_steps=20)
    a, b = first.collect(_lean_left_or_right, 4), again.collect(_lean_left_or_right, 4)
    assert a["observation"].shape == (2, 3, 30, 4) and a["action"].shape == (2, 3, 30)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(first.collect(_lean_left_or_right, 4)["observation"], a["observation"])
    assert not np.array_equal(first.collect(_lean_left_or_right, 5)["observation"], a["observation"])
    assert np.all(a["episodes"] >= 1)  # 30 steps with a 20-step limit: the first episode always completes
    assert np.all((a["first_returns"] > 0) & (a["first_returns"] <= 20))


def test_episode_boundaries_and_next_observations():
    rollouts = ParticleRollouts("cartpole", num_policies=1, envs_per_policy=2, steps=25, seed=0, max_episode_steps=10)
    batch = rollouts.collect(_lean_left_or_right, 0)
    done = (batch["terminated"] + batch["truncated"]) > 0
    assert done[0, :, 9].all()  # a balanced pole reaches the 10-step limit
    same = ~done[..., :-1]  # within an episode, the next observation is the following step's observation
    np.testing.assert_array_equal(batch["next_observation"][..., :-1, :][same], batch["observation"][..., 1:, :][same])


def test_continuous_rollouts_pass_float_actions():
    rollouts = ParticleRollouts("pendulum", num_policies=2, envs_per_policy=1, steps=5, seed=0)
    batch = rollouts.collect(lambda obs, t: np.full((*obs.shape[:2], 1), 5.0, np.float32), 0)
    assert rollouts.action_shape == (1,) and batch["action"].shape == (2, 1, 5, 1)
    assert batch["observation"].shape == (2, 1, 5, 3) and np.all(batch["reward"] <= 0)


def test_unknown_environment_names_the_choices():
    with pytest.raises(UnknownNameError, match=r"unknown environment 'cartpol'; valid choices: .*cartpole_swingup"):
        ParticleRollouts("cartpol", num_policies=1, envs_per_policy=1, steps=1, seed=0)


def test_missing_simulator_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dm_control", None)  # import dm_control now raises ImportError
    with pytest.raises(ImportError, match=r"needs dm_control: pip install -c requirements/constraints.txt dm_control"):
        make_environment("cartpole_swingup", seed=0)


def _simulators_usable() -> str:
    """'' when MuJoCo 3 (dm_control 1.0.50 reads fields MuJoCo 4 removed) and imageio are installed, else why not."""
    try:
        import imageio  # noqa: F401  gymnasium's MuJoCo tasks import it
        import mujoco
    except ImportError as error:
        return f"simulator packages missing: {error}"
    if not mujoco.__version__.startswith("3."):
        return f"mujoco {mujoco.__version__} installed; dm_control 1.0.50 needs mujoco 3.x (3.17.0 tested)"
    return ""


@pytest.mark.skipif(bool(_simulators_usable()), reason=_simulators_usable() or "usable")
@pytest.mark.parametrize(("name", "observation_size"), [("cartpole_swingup", 5), ("inverted_double_pendulum", 9)])
def test_the_papers_simulators_roll_out(name, observation_size):
    rollouts = ParticleRollouts(name, num_policies=1, envs_per_policy=2, steps=3, seed=0)
    batch = rollouts.collect(lambda obs, t: np.zeros((*obs.shape[:2], 1), np.float32), 0)
    assert rollouts.action_shape == (1,) and batch["observation"].shape == (1, 2, 3, observation_size)
    assert np.all(np.isfinite(batch["reward"]))
