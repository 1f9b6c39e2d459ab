"""The environment interface over gymnasium classic control and MinAtar."""

import importlib.util

import numpy as np
import pytest

from common.registry import UnknownNameError
from common.rl.environments import make_environment


def rollout(env, actions):
    observations, rewards, ends = [env.reset()], [], []
    for action in actions:
        step = env.step(action)
        observations.append(step.observation)
        rewards.append(step.reward)
        ends.append((step.terminated, step.truncated))
        if step.terminated or step.truncated:
            observations.append(env.reset())
    return np.stack(observations), rewards, ends


@pytest.mark.parametrize(
    ("name", "shape", "num_actions"),
    [("cartpole", (4,), 2), ("acrobot", (6,), 3), ("minatar/breakout", (10, 10, 4), 3), ("minatar/asterix", None, 5)],
)
def test_shapes_and_seeded_determinism(name, shape, num_actions):
    env = make_environment(name, seed=3)
    assert env.num_actions == num_actions
    if shape is not None:
        assert env.observation_shape == shape
    actions = np.random.default_rng(0).integers(0, env.num_actions, size=60)
    first = rollout(env, actions)
    again = rollout(make_environment(name, seed=3), actions)
    assert first[0].dtype == np.float32 and first[0].shape[1:] == env.observation_shape
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1:] == again[1:]


def test_cartpole_terminates_and_step_limit_truncates():
    env = make_environment("cartpole", seed=0)
    env.reset()
    length = next(t for t in range(1, 200) if env.step(0).terminated)
    assert length < 50  # always pushing left topples the pole
    env = make_environment("minatar/freeway", seed=0, max_episode_steps=5)
    env.reset()
    assert [env.step(0).truncated for _ in range(5)] == [False] * 4 + [True]


def test_bad_names_and_actions_fail_clearly():
    with pytest.raises(UnknownNameError, match=r"unknown environment 'minatar/pong'; valid choices: acrobot, cartpole"):
        make_environment("minatar/pong", seed=0)
    env = make_environment("cartpole", seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"action 2 is out of range for CartPole-v1 \(valid: 0..1\)"):
        env.step(2)


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is not None, reason="ale-py is installed")
def test_atari_without_ale_py_says_how_to_install_it():
    with pytest.raises(ImportError, match=r"needs ale-py: pip install .*\[atari\]"):
        make_environment("atari/pong", seed=0)
