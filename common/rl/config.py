"""Typed configs for the RL library: frozen dataclasses built from a ConfigDict's sections and checked as they are
built, so a wrong type, an unknown field or an unknown name fails before an environment or a Reverb server starts,
with an error that names the field (`replay.capacity must be an int, got '100' (str)`) and the valid choices.

The sections every agent shares are here (env, replay, run); each agent's own section is a dataclass next to its
builder (common/rl/agents.py lists them). A field's `choices` metadata, (table, kind), is checked with
`common.registry.lookup`; `from_section` fills fields the section leaves out from their defaults.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping

from ml_collections import ConfigDict

from common.errors import ConfigError
from common.registry import UnknownNameError, lookup
from common.rl import replay
from common.rl.environments import ENVIRONMENTS


def choices(table: Mapping, kind: str, **field_options) -> dataclasses.Field:
    """A dataclass field whose value must be a key of `table` (`kind` names it in the error)."""
    return dataclasses.field(metadata={"choices": (table, kind)}, **field_options)


def lookup_field(table: Mapping, name: str, kind: str, key: str):
    """lookup() for the config field `key`: its error names the field too."""
    try:
        return lookup(table, name, kind)
    except UnknownNameError as error:
        raise UnknownNameError(f"{key}: {error}") from None


def _describe(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a sequence of {_describe(typing.get_args(hint)[0])}"
    if hint is ConfigDict:
        return "a section"
    return _NAMES.get(hint, f"a {getattr(hint, '__name__', hint)}")


_NAMES = {type(None): "None", int: "an int", float: "a float", bool: "a bool", str: "a string"}


def convert(value, hint, key: str):
    """`value` as the type `hint` says (ints pass as floats, never bools as numbers), or ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return convert(value, arg, key)
            except ConfigError:
                continue
    elif origin is tuple and isinstance(value, list | tuple):
        return tuple(convert(item, typing.get_args(hint)[0], f"{key}[{i}]") for i, item in enumerate(value))
    elif hint is type(None) and value is None:
        return None
    elif hint is ConfigDict and isinstance(value, Mapping | ConfigDict):
        return ConfigDict(value.to_dict() if isinstance(value, ConfigDict) else dict(value))
    elif hint is bool and isinstance(value, bool):
        return value
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")


def from_section(cls, section, path: str):
    """The frozen dataclass `cls` from the ConfigDict (or dict) `section` found at `path` ("replay", "agent")."""
    if not isinstance(section, Mapping | ConfigDict):
        raise ConfigError(f"{path} must be a section, got {section!r} ({type(section).__name__})")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(section.keys()) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]} is not a field of {path}; valid fields: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{path}.{name}"
        if name not in section:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key} is missing")
            continue
        values[name] = convert(section[name], hints[name], key)
        if "choices" in field.metadata:
            table, kind = field.metadata["choices"]
            lookup_field(table, values[name], kind, key)
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """name: a key of ENVIRONMENTS or "atari/<game>"; the options go to `make_environment` when set."""

    name: str
    max_episode_steps: int | None = None
    sticky_action_prob: float | None = None

    def __post_init__(self):
        if not self.name.startswith("atari/"):  # Atari games are known only once ale-py is imported
            lookup_field(ENVIRONMENTS, self.name, "environment", "env.name")


BACKENDS = {"reverb": "a Reverb table (uniform or prioritised)", "ring": "a numpy ring buffer (uniform, one process)"}


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """The replay table (common/rl/replay.py) of an off-policy agent.

    replay_ratio: gradient updates per environment step; oldest_policy_age > 0 instead sets it to
    oldest_policy_age / capacity (the replay study's grid axis, applied by the paper's train.py).
    """

    capacity: int
    sampler: str = choices(replay.SAMPLERS, "replay sampler")
    replay_ratio: float
    batch_size: int
    min_size_to_sample: int
    backend: str = choices(BACKENDS, "replay backend", default="reverb")
    priority_exponent: float = 1.0
    error_batches: float = 4.0
    oldest_policy_age: int = 0


MODES = {"single_process": "common/rl/runner.py", "distributed": "common/rl/distributed.py"}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The runners' schedule: counted in learner updates. num_actors, variables_every (updates between parameter
    broadcasts) and max_actor_restarts are the distributed runner's."""

    total_updates: int
    log_every: int  # environment steps between metric rows
    checkpoint_every: int  # updates; 0: no checkpoints
    final_fraction: float  # the score: mean return of the episodes ending in this last fraction of the run
    mode: str = choices(MODES, "run mode", default="single_process")
    num_actors: int = 2
    variables_every: int = 100
    max_actor_restarts: int = 10


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A whole RL config, typed: `agent` is the dataclass of the agent named `agent_name`."""

    seed: int
    env: EnvConfig
    agent_name: str
    agent: typing.Any
    replay: ReplayConfig | None
    run: RunConfig

    def __post_init__(self):
        if self.replay is not None and self.replay.backend == "ring" and self.replay.sampler != "uniform":
            raise ConfigError(
                f"replay.backend='ring' samples uniformly; replay.sampler={self.replay.sampler!r} needs reverb"
            )
