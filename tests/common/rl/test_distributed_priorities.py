"""Ape-X initial priorities in the distributed runner: an actor scores new items with the learner's own loss path on
its copy of the parameters, and a prioritised Reverb table then holds those priorities (not 1) and samples by
priority ** replay.priority_exponent."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.compat import import_reverb
from common.rl import agents, replay, runner
from common.rl.agent import EnvironmentSpec, VariableClient
from common.rl.dqn.actor import ActorPriorities
from common.rl.dqn.builder import REPLAY
from tests.common.rl.cartpole import dqn_smoke

reverb = import_reverb()

pytestmark = pytest.mark.reverb  # skipped where dm-reverb is not installed

CARTPOLE_SPEC = EnvironmentSpec((4,), 2)


def prioritized_builder(distributional: bool = False):
    config = dqn_smoke()
    config.agent.update(n_step=3, distributional=distributional)
    config.replay.update(sampler="prioritized", priority_exponent=0.5, min_size_to_sample=16)
    return agents.make_builder(config)


def random_items(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """replay.ITEM_FIELDS [count, ...] for CartPole: random observations, both actions, terminal and not."""
    rng = np.random.default_rng(seed)
    return {
        "observation": rng.normal(size=(count, 4)).astype(np.float32),
        "next_observation": rng.normal(size=(count, 4)).astype(np.float32),
        "action": rng.integers(0, 2, count).astype(np.int32),
        "n_step_return": rng.uniform(0, 3, count).astype(np.float32),
        "bootstrap_discount": np.where(np.arange(count) % 3 == 0, 0.0, 0.99**3).astype(np.float32),
    }


@pytest.mark.parametrize("distributional", [False, True])
def test_actor_priorities_are_the_learners_priorities_for_the_same_parameters(distributional):
    builder = prioritized_builder(distributional)
    networks = builder.make_networks(CARTPOLE_SPEC, seed=0)
    learner = builder.make_learner(networks, None)  # a fresh learner: its target network equals its online one
    priorities = ActorPriorities(builder.experiment.agent, nnx.split(networks)[0], VariableClient(learner))
    items = random_items(5)  # not a multiple of ActorPriorities.PAD_ITEMS: the padding must not leak in
    from_actor = priorities(items)
    if not distributional:  # |n-step TD error| written out, with no shared code
        q = np.asarray(networks(jnp.asarray(items["observation"])))
        q_next = np.asarray(networks(jnp.asarray(items["next_observation"])))
        target = items["n_step_return"] + items["bootstrap_discount"] * q_next.max(axis=1)
        td = target - q[np.arange(5), items["action"]]
        np.testing.assert_allclose(from_actor, np.abs(td), rtol=1e-5, atol=1e-6)

    batch = replay.Batch(data=items, keys=np.arange(5, dtype=np.uint64), probabilities=np.full(5, 0.2), table_size=5)
    from_learner, _ = learner.update(batch)  # the priorities it would write back, from the parameters before the step
    assert from_actor.shape == (5,) and from_actor.dtype == np.float32
    np.testing.assert_allclose(from_actor, from_learner, rtol=1e-5, atol=1e-6)
    assert len(np.unique(from_actor)) == 5 and np.all(from_actor > 0)


def test_an_actor_fills_a_prioritized_table_at_its_own_priorities():
    builder = prioritized_builder()
    exponent = builder.experiment.replay.priority_exponent
    networks = builder.make_networks(CARTPOLE_SPEC, seed=0)
    learner = builder.make_learner(networks, None)
    server = reverb.Server(builder.make_replay_tables(single_process=True))
    client = server.localhost_client()
    try:
        writer = builder.make_adder(client, networks, VariableClient(learner))
        assert isinstance(writer, replay.InitialPriorityWriter)
        env, rng = runner.make_env(builder.experiment.env, seed=0), np.random.default_rng(0)
        writer.add_first(env.reset())
        for _ in range(40):  # about two random CartPole episodes
            action = int(rng.integers(2))
            step = env.step(action)
            writer.add(action, step.reward, step.observation, step.terminated, step.truncated)
            if step.terminated or step.truncated:
                writer.add_first(env.reset())
        writer.close()
        samples = list(client.sample(REPLAY, num_samples=64, emit_timesteps=False))
    finally:
        server.stop()
    priorities = np.array([sample.info.priority for sample in samples])
    probabilities = np.array([sample.info.probability for sample in samples])
    assert np.all(priorities > 0) and not np.allclose(priorities, 1.0) and len(np.unique(priorities)) > 10
    from_learner, _ = learner.update(replay.stack_batch(samples))
    np.testing.assert_allclose(priorities, from_learner, rtol=1e-5, atol=1e-6)
    # The table samples in proportion to priority ** exponent, as for the learner's updates.
    np.testing.assert_allclose(probabilities / probabilities[0], (priorities / priorities[0]) ** exponent, rtol=1e-4)


def test_a_uniform_table_gets_the_builders_adder():
    builder = agents.make_builder(dqn_smoke())
    assert builder.experiment.replay.sampler == "uniform"
    server = reverb.Server(builder.make_replay_tables(single_process=True))
    try:
        writer = builder.make_adder(server.localhost_client(), None, None)
        assert type(writer) is replay.NStepWriter and writer.priority == 1.0
        writer.close()
    finally:
        server.stop()
