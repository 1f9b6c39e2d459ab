"""One small interface over the environments the RL papers use: gymnasium classic control, MinAtar, and Atari
through ale-py when the `atari` extra is installed.

    env = make_environment("minatar/breakout", seed=0)
    observation = env.reset()                       # float32 [*env.observation_shape]
    step = env.step(action)                         # Step(observation, reward, terminated, truncated)

`terminated` means the episode really ended (bootstrap with 0); `truncated` means a step limit cut it (bootstrap
from the last observation). After either, call `reset()`.

Continuous control (`ContinuousEnvironment`: float actions [*action_shape], num_actions 0): gymnasium's Pendulum
and MountainCarContinuous, MuJoCo's InvertedDoublePendulum (needs mujoco 3 and imageio) and dm_control's cartpole
swing-up (needs dm_control); a missing simulator raises ImportError saying what to install.
"""

import abc
import dataclasses
from collections.abc import Callable

import numpy as np

from common.registry import lookup


@dataclasses.dataclass(frozen=True)
class Step:
    observation: np.ndarray
    reward: float
    terminated: bool
    truncated: bool


class Environment(abc.ABC):
    """The interface every suite implements."""

    name: str
    observation_shape: tuple[int, ...]
    num_actions: int

    @abc.abstractmethod
    def reset(self) -> np.ndarray:
        """Starts an episode; returns the first observation."""

    @abc.abstractmethod
    def step(self, action: int) -> Step:
        """Applies `action` (0 .. num_actions - 1)."""

    def _check_action(self, action) -> int:
        action = int(action)
        if not 0 <= action < self.num_actions:
            raise ValueError(f"action {action} is out of range for {self.name} (valid: 0..{self.num_actions - 1})")
        return action


class GymnasiumEnvironment(Environment):
    """A gymnasium environment with a discrete action space (classic control, or Atari through ale-py)."""

    def __init__(self, name: str, env, *, seed: int):
        import gymnasium

        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise ValueError(f"{name} has action space {env.action_space}; only discrete actions are supported")
        self.name, self._env, self._seed = name, env, seed
        self.observation_shape = tuple(env.observation_space.shape)
        self.num_actions = int(env.action_space.n)
        env.action_space.seed(seed)

    def reset(self) -> np.ndarray:
        seed, self._seed = self._seed, None  # seed the first episode only; later ones continue the same stream
        observation, _ = self._env.reset(seed=seed)
        return np.asarray(observation, np.float32)

    def step(self, action) -> Step:
        observation, reward, terminated, truncated, _ = self._env.step(self._check_action(action))
        return Step(np.asarray(observation, np.float32), float(reward), bool(terminated), bool(truncated))


class MinAtarEnvironment(Environment):
    """A MinAtar game (10x10xC binary images) with its minimal action set, sticky actions and a step limit."""

    def __init__(self, game: str, *, seed: int, sticky_action_prob: float = 0.1, max_episode_steps: int = 27_000):
        from minatar import Environment as MinAtar

        self.name = f"minatar/{game}"
        self._env = MinAtar(game, sticky_action_prob=sticky_action_prob)
        self._env.seed(seed)
        self._actions = list(self._env.minimal_action_set())
        self.observation_shape = tuple(self._env.state_shape())
        self.num_actions = len(self._actions)
        self._max_steps, self._steps = max_episode_steps, 0

    def reset(self) -> np.ndarray:
        self._env.reset()
        self._steps = 0
        return self._env.state().astype(np.float32)

    def step(self, action) -> Step:
        reward, terminated = self._env.act(self._actions[self._check_action(action)])
        self._steps += 1
        truncated = not terminated and self._steps >= self._max_steps
        return Step(self._env.state().astype(np.float32), float(reward), bool(terminated), truncated)


class ContinuousEnvironment(Environment):
    """An environment with a box of continuous actions: `step` takes a float array [*action_shape], clipped to
    [action_low, action_high]; `num_actions` is 0. Gymnasium's (classic control, MuJoCo) or dm_control's."""

    num_actions = 0

    def __init__(self, name: str, env, *, seed: int):
        self.name, self._env, self._seed = name, env, seed
        self.observation_shape = tuple(env.observation_space.shape)
        self.action_shape = tuple(env.action_space.shape)
        self.action_low = np.asarray(env.action_space.low, np.float32)
        self.action_high = np.asarray(env.action_space.high, np.float32)

    def reset(self) -> np.ndarray:
        seed, self._seed = self._seed, None  # as GymnasiumEnvironment: the first episode (or one after reseed)
        observation, _ = self._env.reset(seed=seed)
        return np.asarray(observation, np.float32)

    def step(self, action) -> Step:
        action = np.clip(np.asarray(action, np.float32).reshape(self.action_shape), self.action_low, self.action_high)
        observation, reward, terminated, truncated, _ = self._env.step(action)
        return Step(np.asarray(observation, np.float32), float(reward), bool(terminated), bool(truncated))


def _continuous(gym_id: str, *, needs: str = "") -> Callable[..., Environment]:
    """A gymnasium task with continuous actions; `needs`: the extra package it imports (say how to install)."""

    def make(*, seed: int, **options) -> Environment:
        import gymnasium

        kwargs = {"max_episode_steps": options["max_episode_steps"]} if options.get("max_episode_steps") else {}
        try:
            env = gymnasium.make(gym_id, **kwargs)
        except (ImportError, gymnasium.error.DependencyNotInstalled) as error:
            raise ImportError(
                f"environment {gym_id} needs {needs}: pip install -c requirements/constraints.txt {needs} ({error})"
            ) from None
        return ContinuousEnvironment(gym_id, env, seed=seed)

    return make


class _DMControlTask:
    """dm_control's suite task behind gymnasium's reset/step shape: observations flattened and concatenated,
    truncated at the task's time limit (never terminated), as the Continuous wrapper expects."""

    def __init__(self, domain: str, task: str, max_episode_steps: int | None):
        try:
            from dm_control import suite
        except ImportError:
            raise ImportError(
                f"environment {domain}_{task} needs dm_control: pip install -c requirements/constraints.txt dm_control"
            ) from None
        import gymnasium

        self._suite, self._domain, self._task = suite, domain, task
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        spec = self._env.action_spec()
        size = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = gymnasium.spaces.Box(spec.minimum, spec.maximum, spec.shape, np.float32)
        self._limit, self._steps = max_episode_steps, 0

    def _observation(self, time_step) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in time_step.observation.values()])

    def reset(self, seed=None):
        if seed is not None:
            self._env = self._suite.load(self._domain, self._task, task_kwargs={"random": seed})
        self._steps = 0
        return self._observation(self._env.reset()), {}

    def step(self, action):
        time_step = self._env.step(action)
        self._steps += 1
        truncated = time_step.last() or (self._limit is not None and self._steps >= self._limit)
        return self._observation(time_step), float(time_step.reward or 0.0), False, truncated, {}


def _dm_control(domain: str, task: str) -> Callable[..., Environment]:
    def make(*, seed: int, **options) -> Environment:
        env = _DMControlTask(domain, task, options.get("max_episode_steps"))
        return ContinuousEnvironment(f"dm_control/{domain}_{task}", env, seed=seed)

    return make


def _classic(gym_id: str) -> Callable[..., Environment]:
    def make(*, seed: int, **options) -> Environment:
        import gymnasium

        kwargs = {"max_episode_steps": options["max_episode_steps"]} if options.get("max_episode_steps") else {}
        return GymnasiumEnvironment(gym_id, gymnasium.make(gym_id, **kwargs), seed=seed)

    return make


def _minatar(game: str) -> Callable[..., Environment]:
    def make(*, seed: int, **options) -> Environment:
        return MinAtarEnvironment(game, seed=seed, **{k: v for k, v in options.items() if v is not None})

    return make


ENVIRONMENTS: dict[str, Callable[..., Environment]] = {
    "cartpole": _classic("CartPole-v1"),
    "acrobot": _classic("Acrobot-v1"),
    "mountain_car": _classic("MountainCar-v0"),
    "pendulum": _continuous("Pendulum-v1"),
    "mountain_car_continuous": _continuous("MountainCarContinuous-v0"),
    "inverted_double_pendulum": _continuous("InvertedDoublePendulum-v5", needs="mujoco"),
    "cartpole_swingup": _dm_control("cartpole", "swingup"),
    **{f"minatar/{game}": _minatar(game) for game in ("asterix", "breakout", "freeway", "seaquest", "space_invaders")},
}


def _atari(game: str, *, seed: int, sticky_action_prob: float = 0.25, max_episode_steps: int | None = None):
    """Dopamine's Atari setting: sticky actions, 4-frame skip with max-pooling, 84x84 grayscale, 4 frames stacked."""
    try:
        import ale_py
    except ImportError:
        raise ImportError(
            f"environment 'atari/{game}' needs ale-py: pip install -c requirements/constraints.txt -e '.[atari]'"
        ) from None
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gymnasium.register_envs(ale_py)
    games = sorted(ale_py.roms.get_all_rom_ids())
    lookup({name: name for name in games}, game, "Atari game")
    env_id = "ALE/" + "".join(part.capitalize() for part in game.split("_")) + "-v5"
    env = gymnasium.make(
        env_id,
        frameskip=1,
        repeat_action_probability=sticky_action_prob,
        full_action_space=False,
        max_episode_steps=max_episode_steps or 108_000,
    )
    env = FrameStackObservation(AtariPreprocessing(env, frame_skip=4, screen_size=84, noop_max=0), 4)
    return GymnasiumEnvironment(f"atari/{game}", env, seed=seed)


def make_environment(name: str, *, seed: int, **options) -> Environment:
    """The environment called `name` (a key of ENVIRONMENTS, or "atari/<game>" with ale-py installed).

    options: max_episode_steps (all), sticky_action_prob (MinAtar and Atari).
    """
    suite, _, game = name.partition("/")
    if suite == "atari":
        return _atari(game, seed=seed, **options)
    return lookup(ENVIRONMENTS, name, "environment")(seed=seed, **options)


def reseed(env: Environment, seed: int) -> None:
    """Makes the next `reset()` of a gymnasium-backed environment start from `seed` (an on-policy rollout that
    restarts every episode from its own seed is a pure function of the seed, so a resumed run sees the same
    episodes)."""
    if not isinstance(env, GymnasiumEnvironment | ContinuousEnvironment):
        raise TypeError(f"{env.name} cannot be reseeded; only gymnasium and dm_control environments can")
    env._seed = seed
