"""The PPO controller on a toy language with two operands: valid samples only, and PPO moves toward reward."""

import numpy as np
import pytest

from common.search import controller
from tests.common.search import toy


def test_samples_use_only_operands_and_earlier_units():
    vocabulary = toy.vocabulary(3)
    actions, log_probs = controller.PPOTrainer(vocabulary, seed=1).sample(64)
    assert actions.shape == (64, 15) and log_probs.shape == (64,)
    for row in actions:
        np.testing.assert_array_equal(vocabulary.encode(vocabulary.decode(row)), row)  # decode validates
    assert set(np.unique(actions[:, [1, 2]])) == {0, 1}  # unit 1: the operands a, b
    assert set(np.unique(actions[:, [11, 12]])) == {0, 1, 2, 3}  # unit 3: also units 1 and 2, none beyond


def test_ppo_update_raises_the_probability_of_the_rewarded_candidate():
    vocabulary = toy.vocabulary(1)
    trainer = controller.PPOTrainer(vocabulary, seed=0, learning_rate=1e-2)
    actions, log_probs = trainer.sample(6)
    target = toy.LANGUAGE.from_spec("toy:mul.1.scale.0.square")
    actions[0], log_probs[0] = vocabulary.encode(target), trainer.log_probability(target)
    before = trainer.log_probability(target)
    trainer.update(actions, log_probs, np.array([1.0, 0, 0, 0, 0, 0]))
    assert trainer.log_probability(target) > before + 0.1
    assert trainer.baseline == pytest.approx(1 / 6)  # the first mean, then 0.9 * it + 0.1 * the same mean
