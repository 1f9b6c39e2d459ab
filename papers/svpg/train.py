"""Training for SVPG: n particles (policies) as one batched pytree, each iteration one rollout of all of them
(common/rl/rollouts.py), their policy gradients by one vmapped call, the particle update of `config.svpg.method`
(papers/svpg/model.py) and Adam. Each particle also has its own value network (the REINFORCE baseline or the A2C
critic), trained by regression on its returns; only the policies take the SVPG update.

An iteration is a pure function of (state, seed, iteration): the rollout reseeds every environment and draws the
actions' noise from fold_in(key(seed), iteration), so a run resumed from a checkpoint (every
run.checkpoint_every iterations, at the end, and on SIGTERM/SIGINT) ends with exactly the result of a run that
never stopped. Metrics per iteration (metrics.jsonl, step = iteration): the best and the mean particle's return
(the mean return of the first episode in each of its environments) and every particle's return (particle/NN).
"""

import dataclasses
import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from common.registry import lookup
from common.rl import policy_gradient
from common.rl.policies import Policy, ValueFunction, make_policy, make_value_function
from common.rl.rollouts import ParticleRollouts
from common.train.checkpoint import Checkpointer, StopRequest
from common.train.loop import TrainingStopped
from common.train.metrics import MetricWriter
from papers.svpg import model


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one run is built from: rollouts of P policies x E environments, the networks and optimizers."""

    rollouts: ParticleRollouts
    policy: Policy
    critic: ValueFunction
    policy_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    num_policies: int


def build(config: ConfigDict) -> Setup:
    """Checks the names first (method, estimator, environment), then builds the environments and networks.
    The joint baseline is one policy with num_particles times the environments."""
    method = config.svpg.method
    lookup(model.METHODS, method, "svpg method")
    lookup(policy_gradient.ESTIMATORS, config.agent.estimator, "policy-gradient estimator")
    n, envs = config.svpg.num_particles, config.rollout.envs_per_particle
    num_policies, envs_per_policy = (1, n * envs) if method == "joint" else (n, envs)
    rollouts = ParticleRollouts(
        config.env.name,
        num_policies=num_policies,
        envs_per_policy=envs_per_policy,
        steps=config.rollout.steps,
        seed=config.seed,
        max_episode_steps=config.env.max_episode_steps,
    )
    agent = config.agent
    policy = make_policy(
        rollouts.observation_size,
        rollouts.num_actions,
        math.prod(rollouts.action_shape),
        tuple(agent.hidden),
        init_log_std=agent.init_log_std,
    )
    critic = make_value_function(rollouts.observation_size, tuple(agent.critic_hidden))
    return Setup(
        rollouts, policy, critic, optax.adam(agent.learning_rate), optax.adam(agent.critic_learning_rate), num_policies
    )


def init_state(setup: Setup, seed: int) -> dict:
    """{policy, critic, policy_opt, critic_opt, iteration}: every leaf of policy/critic has a leading axis [P]."""
    policy_key, critic_key = jax.random.split(jax.random.key(seed))
    policy = jax.vmap(setup.policy.init)(jax.random.split(policy_key, setup.num_policies))
    critic = jax.vmap(setup.critic.init)(jax.random.split(critic_key, setup.num_policies))
    return {
        "policy": policy,
        "critic": critic,
        "policy_opt": setup.policy_tx.init(policy),
        "critic_opt": jax.vmap(setup.critic_tx.init)(critic),  # per particle, so the critic update vmaps
        "iteration": jnp.zeros((), jnp.int32),
    }


def make_particle_gradients(setup: Setup, agent: ConfigDict) -> Callable:
    """(policy params, critic params, batch [E, T, ...]) of ONE particle -> (grad J, metrics): the policy gradient
    (an ascent direction) by the configured estimator."""
    estimate = partial(
        policy_gradient.advantages_and_returns,
        agent.estimator,
        discount=agent.discount,
        gae_lambda=agent.gae_lambda,
    )

    def gradients(policy_params, critic_params, batch):
        values = setup.critic.apply(critic_params, batch["observation"])  # [E, T]
        next_values = setup.critic.apply(critic_params, batch["next_observation"])
        advantages, returns = jax.vmap(estimate)(
            batch["reward"], batch["terminated"], batch["truncated"], values, next_values
        )
        if agent.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        def objective(params):
            log_probs = setup.policy.log_prob(params, batch["observation"], batch["action"])
            return policy_gradient.surrogate_objective(log_probs.ravel(), advantages.ravel())

        grads = jax.grad(objective)(policy_params)
        return grads, returns

    return gradients


def make_critic_update(setup: Setup, steps: int) -> Callable:
    """(critic params, critic opt state, observations [E, T, obs], returns [E, T]) of ONE particle -> updated
    (params, opt state, loss): `steps` Adam steps of regression on the returns."""

    def loss(params, observations, returns):
        return 0.5 * jnp.mean(jnp.square(setup.critic.apply(params, observations) - returns))

    def update(params, opt_state, observations, returns):
        value = loss(params, observations, returns)
        for _ in range(steps):
            value, grads = jax.value_and_grad(loss)(params, observations, returns)
            updates, opt_state = setup.critic_tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return params, opt_state, value

    return update


def make_update(setup: Setup, config: ConfigDict) -> Callable:
    """The jitted iteration update: (state, batch [P, E, T, ...]) -> (state, metrics). Gradients and critic
    updates are vmapped over particles; the particle direction couples them (svpg)."""
    gradients = make_particle_gradients(setup, config.agent)
    critic_update = make_critic_update(setup, config.agent.critic_steps)
    svpg, iterations = config.svpg, config.run.iterations
    alpha_final = svpg.alpha_final or None

    def update(state, batch):
        grads, returns = jax.vmap(gradients)(state["policy"], state["critic"], batch)
        progress = state["iteration"] / max(iterations - 1, 1)
        alpha = model.temperature(svpg.alpha, alpha_final, progress)
        direction = model.particle_direction(svpg.method, state["policy"], grads, alpha)
        ascent = jax.tree_util.tree_map(jnp.negative, direction)  # optax minimises
        updates, policy_opt = setup.policy_tx.update(ascent, state["policy_opt"], state["policy"])
        critic, critic_opt, critic_loss = jax.vmap(critic_update)(
            state["critic"], state["critic_opt"], batch["observation"], returns
        )
        flat, _ = model.flatten_particles(state["policy"])
        new_state = {
            "policy": optax.apply_updates(state["policy"], updates),
            "critic": critic,
            "policy_opt": policy_opt,
            "critic_opt": critic_opt,
            "iteration": state["iteration"] + 1,
        }
        spread = jnp.sqrt(jnp.mean(model.squared_distances(flat)))
        return new_state, {"critic_loss": jnp.mean(critic_loss), "alpha": alpha, "particle_spread": spread}

    return jax.jit(update)


def train_and_evaluate(config: ConfigDict, workdir: str, *, log=print) -> dict[str, float]:
    """Trains config.run.iterations iterations in `workdir`, resuming from its checkpoints. Returns the final
    iteration's best and mean particle return and every particle's return, sorted (the diversity view)."""
    setup = build(config)
    state = init_state(setup, config.seed)
    checkpointer = Checkpointer(workdir, save_every=max(config.run.checkpoint_every, 1), async_save=False)
    start = checkpointer.latest_step()
    if start is not None:
        state = checkpointer.restore({"state": state}, start)["state"]
        log(f"resumed at iteration {start}")
    update = make_update(setup, config)
    policy, P = setup.policy, setup.num_policies
    act = jax.jit(
        lambda params, observations, key: jax.vmap(policy.sample)(params, observations, jax.random.split(key, P))
    )
    rollouts, key = setup.rollouts, jax.random.key(config.seed)
    samples = rollouts.shape[1] * rollouts.steps  # per policy per iteration
    writer = MetricWriter(workdir, resume_step=start or 0)
    stop, returns = StopRequest(), None
    iteration = int(state["iteration"])
    try:
        while iteration < config.run.iterations:
            batch = rollouts.collect(partial(_act, act, state["policy"], jax.random.fold_in(key, iteration)), iteration)
            returns = batch["first_returns"].mean(axis=1)  # [P]
            episodes = batch["episodes"].sum(axis=1).mean()
            arrays = {k: v for k, v in batch.items() if k not in ("first_returns", "episodes")}
            state, metrics = update(state, arrays)
            iteration += 1
            row = {
                "return_best": float(returns.max()),
                "return_mean": float(returns.mean()),
                "samples_per_particle": float(iteration * samples),
                "episodes_per_particle": float(episodes),
                **{name: float(value) for name, value in metrics.items()},
                **{f"particle/{i:02d}": float(r) for i, r in enumerate(returns)},
            }
            writer.write(iteration, row)
            on_period = iteration % max(config.run.checkpoint_every, 1) == 0 or iteration == config.run.iterations
            if on_period or stop.requested is not None:
                checkpointer.maybe_save(iteration, {"state": state}, force=True)
            if stop.requested is not None:
                raise TrainingStopped(stop.requested, iteration, checkpointer.directory)
    finally:
        stop.restore_handlers()
        checkpointer.close()
        writer.close()
    final = {"iterations": float(iteration), "samples_per_particle": float(iteration * samples)}
    if returns is not None:
        final.update(final_best_return=float(returns.max()), final_mean_return=float(returns.mean()))
        final.update({f"sorted_return_{i:02d}": float(r) for i, r in enumerate(np.sort(returns)[::-1])})
    return final


def _act(act, params, iteration_key, observations, t):
    """The actions of step t of an iteration's rollout, from key fold_in(iteration_key, t)."""
    return act(params, observations, jax.random.fold_in(iteration_key, t))


def build_for_dry_run(config: ConfigDict):
    """One particle's policy network and its input shape (for --dry_run's parameter and FLOP counts)."""
    from flax import nnx

    setup = build(config)
    return nnx.merge(setup.policy.graphdef, setup.policy.init(jax.random.key(0))), (setup.rollouts.observation_size,)
