"""On-policy rollouts for a batch of policies: P policies (particles, seeds) x E environments each, stepped together,
T steps per environment per iteration. One jitted call picks the actions of all P x E environments at each step.

Every iteration restarts each environment from its own seed (a function of the run's seed, the iteration and the
environment's index), so a rollout is a pure function of (parameters, seed, iteration): rerunning an iteration,
or resuming a run, sees the same episodes. With T at least the episode step limit, the first episode of every
environment completes inside the rollout; its return is the policy's score for the iteration (`first_returns`),
free of the bias that cutting episodes at the rollout's end would add. Later episodes fill the rest of the T steps.

    rollouts = ParticleRollouts("pendulum", num_policies=16, envs_per_policy=5, steps=200, seed=0)
    batch = rollouts.collect(act, iteration)   # act(observations [P, E, obs], t) -> actions [P, E] or [P, E, A]
    batch["observation"]                       # [P, E, T, obs]; also action, reward, terminated, truncated,
                                               # next_observation; batch["first_returns"] [P, E]
"""

import numpy as np

from common.rl.environments import Environment, make_environment, reseed


class ParticleRollouts:
    """P x E environments of one task, and the arrays one iteration's rollout fills."""

    def __init__(
        self,
        env_name: str,
        *,
        num_policies: int,
        envs_per_policy: int,
        steps: int,
        seed: int,
        max_episode_steps: int | None = None,
    ):
        options = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
        self.shape = (num_policies, envs_per_policy)
        self.steps, self.seed = steps, seed
        self.envs: list[Environment] = [
            make_environment(env_name, seed=seed, **options) for _ in range(num_policies * envs_per_policy)
        ]
        env = self.envs[0]
        self.observation_size = int(np.prod(env.observation_shape))
        self.num_actions = env.num_actions
        self.action_shape = tuple(getattr(env, "action_shape", ()))

    def env_seed(self, iteration: int, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, iteration, index]).generate_state(1)[0])

    def collect(self, act, iteration: int) -> dict[str, np.ndarray]:
        """Runs every environment `steps` steps from a fresh seeded reset; `act(observations [P, E, obs], t)`
        returns the actions of all of them."""
        P, E = self.shape
        T, n = self.steps, P * E
        observation_size = self.observation_size
        discrete = self.num_actions > 0
        arrays = {
            "observation": np.zeros((n, T, observation_size), np.float32),
            "next_observation": np.zeros((n, T, observation_size), np.float32),
            "action": np.zeros((n, T, *self.action_shape), np.int32 if discrete else np.float32),
            "reward": np.zeros((n, T), np.float32),
            "terminated": np.zeros((n, T), np.float32),
            "truncated": np.zeros((n, T), np.float32),
        }
        observations = np.zeros((n, observation_size), np.float32)
        for i, env in enumerate(self.envs):
            reseed(env, self.env_seed(iteration, i))
            observations[i] = env.reset().ravel()
        running, first_returns = np.zeros(n), np.full(n, np.nan)
        episodes = np.zeros(n, np.int32)
        for t in range(T):
            actions = np.asarray(act(observations.reshape(P, E, observation_size), t)).reshape(n, *self.action_shape)
            arrays["observation"][:, t] = observations
            arrays["action"][:, t] = actions
            for i, env in enumerate(self.envs):
                step = env.step(actions[i])
                arrays["reward"][i, t] = step.reward
                arrays["terminated"][i, t] = step.terminated
                arrays["truncated"][i, t] = step.truncated
                arrays["next_observation"][i, t] = step.observation.ravel()
                running[i] += step.reward
                if step.terminated or step.truncated:
                    if episodes[i] == 0:
                        first_returns[i] = running[i]
                    episodes[i] += 1
                    running[i] = 0.0
                    observations[i] = env.reset().ravel()
                else:
                    observations[i] = step.observation.ravel()
        batch = {name: array.reshape(P, E, *array.shape[1:]) for name, array in arrays.items()}
        unfinished = np.isnan(first_returns)  # T below the step limit: score the partial first episode
        first_returns[unfinished] = running[unfinished]
        batch["first_returns"] = first_returns.reshape(P, E)
        batch["episodes"] = episodes.reshape(P, E)
        return batch
