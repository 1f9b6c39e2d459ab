"""The on-policy agent: returns against hand-computed ones, the rollout's bookkeeping, and REINFORCE through the
same single-process runner as DQN, learning CartPole well past a random policy."""

import json
import os

import numpy as np
import pytest

from common.rl import runner
from common.rl.reinforce import Rollout, rollout_returns
from tests.common.rl.cartpole import random_policy_return, reinforce_cartpole


def test_returns_stop_at_termination_and_bootstrap_where_cut():
    rewards = np.ones(5, np.float32)
    discounts = np.array([0.9, 0.9, 0.0, 0.9, 0.9], np.float32)  # the episode terminates at step 2
    next_values = np.array([10.0, 20.0, 30.0, 40.0, 50.0], np.float32)
    continues = np.array([1.0, 0.0, 1.0, 1.0, 1.0], np.float32)  # a step limit cuts the episode at step 1
    g4 = 1 + 0.9 * 50  # the rollout's end bootstraps
    g3 = 1 + 0.9 * g4
    g2 = 1.0  # terminated: nothing after
    g1 = 1 + 0.9 * 20  # truncated: the next observation's value
    g0 = 1 + 0.9 * g1
    returns = rollout_returns(rewards, discounts, next_values, continues)
    np.testing.assert_allclose(returns, [g0, g1, g2, g3, g4], rtol=1e-6)


def test_rollout_hands_over_exactly_its_length():
    rollout = Rollout(3, (2,), discount=0.9)
    rollout.add_first(np.zeros(2))
    rollout.add(1, 1.0, np.ones(2), False, False)
    with pytest.raises(RuntimeError, match="holds 1 of its 3 steps"):
        rollout.sample()
    rollout.add(0, 2.0, np.full(2, 2.0), True, False)
    rollout.add_first(np.full(2, 5.0))
    rollout.add(1, 3.0, np.full(2, 6.0), False, True)
    with pytest.raises(RuntimeError, match="holds 3 steps already"):
        rollout.add(1, 3.0, np.full(2, 7.0), False, False)
    data = rollout.sample()
    assert rollout.size() == 0
    np.testing.assert_array_equal(data["observation"][:, 0], [0.0, 1.0, 5.0])  # a new episode at step 2
    np.testing.assert_array_equal(data["next_observation"][:, 0], [1.0, 2.0, 6.0])
    np.testing.assert_allclose(data["discount"], [0.9, 0.0, 0.9])
    np.testing.assert_array_equal(data["continues"], [1.0, 1.0, 0.0])


def test_reinforce_learns_cartpole_through_the_single_process_runner(tmp_path):
    final = runner.train_single_process(reinforce_cartpole(), str(tmp_path), log=lambda _: None)
    assert final["updates"] == 60 and final["env_steps"] == 60 * 32
    assert "replay_inserts" not in final and not os.path.exists(tmp_path / "replay")  # no table, no server
    with open(tmp_path / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert {"policy_loss", "baseline_loss", "entropy"} <= set(rows[-1])
    random_return = random_policy_return()
    assert 15 < random_return < 30
    assert final["final_return"] > 2 * random_return, final
