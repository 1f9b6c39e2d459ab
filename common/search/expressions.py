"""An expression language over core units `b(u1(input1), u2(input2))`, with its function tables given as data.

A candidate is a sequence of core units. Unit i combines two inputs, each passed through a unary function, with a
binary function; an input is one of the language's operands (0 .. num_operands - 1) or the output of an earlier
unit (num_operands + j for unit j, counted from 0, j < i). The candidate's output is its last unit's output.
A function may use a parameter (e.g. a trainable scale); every use gets its own slot in the parameter array.

A paper defines its instance: `Language(operands, unary, binary, spec_prefix)`. Each candidate then has two
string forms:
  spec  `<prefix><binary>.<input1>.<unary1>.<input2>.<unary2>[+<next unit>...]` (path- and config-safe)
  name  the readable formula from the functions' templates, with the operands of commutative binaries sorted
        so that equal functions get equal names (a search's cache key).
A `Vocabulary` is the subset of functions a search may use and its number of units: it enumerates, samples and
mutates candidates, and flattens them into decisions (the controller's actions).
"""

import dataclasses
import itertools
import re
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from common.registry import lookup


@dataclasses.dataclass(frozen=True)
class Unary:
    """u(x, parameter); `template` renders the readable form with `{}` for the operand."""

    fn: Callable[[jax.Array, jax.Array | None], jax.Array]
    template: str
    uses_parameter: bool = False
    parameter_init: float = 1.0


@dataclasses.dataclass(frozen=True)
class Binary:
    """b(x1, x2, parameter); `template` renders with `{0}`, `{1}`; commutative ones sort their operands in names."""

    fn: Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]
    template: str
    uses_parameter: bool = False
    commutative: bool = False
    parameter_init: float = 1.0


@dataclasses.dataclass(frozen=True)
class CoreUnit:
    """binary(unary1(input1), unary2(input2)); inputs index the operands, then the earlier units' outputs."""

    binary: str
    input1: int
    unary1: str
    input2: int
    unary2: str


Candidate = tuple[CoreUnit, ...]

# One core unit's decisions, in the order a controller emits them and `Vocabulary.encode` lays them out.
DECISIONS = ("binary", "input", "input", "unary", "unary")


@dataclasses.dataclass(frozen=True, eq=False)  # compared and hashed by identity: the tables are dicts
class Language:
    """Operand names and the function tables; every candidate method validates its candidate first."""

    operands: tuple[str, ...]
    unary: Mapping[str, Unary]
    binary: Mapping[str, Binary]
    spec_prefix: str

    def __post_init__(self):
        if not self.operands or not self.unary or not self.binary:
            raise ValueError(f"a language needs operands, unary and binary functions, got {self}")

    def validate(self, candidate: Sequence[CoreUnit]) -> Candidate:
        """Checks the names and the inputs (an operand or an earlier unit's output); raises naming the bad value."""
        candidate = tuple(candidate)
        if not candidate:
            raise ValueError("a candidate needs at least one core unit")
        for index, unit in enumerate(candidate):
            lookup(self.binary, unit.binary, "binary function")
            lookup(self.unary, unit.unary1, "unary function")
            lookup(self.unary, unit.unary2, "unary function")
            last = len(self.operands) - 1 + index
            for slot in (unit.input1, unit.input2):
                if not 0 <= slot <= last:
                    raise ValueError(
                        f"core unit {index + 1} reads input {slot}; valid inputs are 0 ({self.operands[0]}) to {last} "
                        f"(operands {', '.join(self.operands)}, then outputs of earlier core units)"
                    )
        return candidate

    def to_spec(self, candidate: Sequence[CoreUnit]) -> str:
        units = [f"{u.binary}.{u.input1}.{u.unary1}.{u.input2}.{u.unary2}" for u in self.validate(candidate)]
        return self.spec_prefix + "+".join(units)

    def is_spec(self, text: str) -> bool:
        return isinstance(text, str) and text.startswith(self.spec_prefix)

    def from_spec(self, spec: str) -> Candidate:
        """Parses `<prefix><binary>.<in1>.<unary1>.<in2>.<unary2>[+...]`; errors name the bad part."""
        if not self.is_spec(spec):
            raise ValueError(f"candidate spec {spec!r} must start with {self.spec_prefix!r}")
        units = []
        for part in spec[len(self.spec_prefix) :].split("+"):
            fields = part.split(".")
            if len(fields) != 5 or not fields[1].isdigit() or not fields[3].isdigit():
                raise ValueError(
                    f"core unit {part!r} of {spec!r} is not <binary>.<input1>.<unary1>.<input2>.<unary2> "
                    "with integer inputs"
                )
            units.append(CoreUnit(fields[0], int(fields[1]), fields[2], int(fields[3]), fields[4]))
        return self.validate(units)

    def readable_name(self, candidate: Sequence[CoreUnit]) -> str:
        """The formula in the operands, equal for operand swaps of commutative binaries."""
        outputs = list(self.operands)
        for unit in self.validate(candidate):
            binary = self.binary[unit.binary]
            operands = [
                _apply_template(self.unary[unit.unary1].template, outputs[unit.input1]),
                _apply_template(self.unary[unit.unary2].template, outputs[unit.input2]),
            ]
            if binary.commutative:
                operands.sort()
            outputs.append(binary.template.format(*operands))
        name = outputs[-1]
        return name[1:-1] if _wrapped_in_one_pair(name) else name

    def parameter_inits(self, candidate: Sequence[CoreUnit]) -> list[float]:
        """One initial value per parameter slot, in evaluation order (unary1, unary2, binary of each unit)."""
        inits = []
        for unit in candidate:
            for function in (self.unary[unit.unary1], self.unary[unit.unary2], self.binary[unit.binary]):
                if function.uses_parameter:
                    inits.append(function.parameter_init)
        return inits

    def evaluate(self, candidate: Sequence[CoreUnit], operands: Sequence[jax.Array], parameters: jax.Array):
        """The candidate on the operands; parameters: [num_parameters, ...] broadcasting against the values.

        Parameters are cast to the first operand's dtype. No validation: this is what a jitted function traces."""
        outputs = list(operands)
        dtype = outputs[0].dtype
        slot = 0

        def next_parameter():
            nonlocal slot
            slot += 1
            return parameters[slot - 1].astype(dtype)

        for unit in candidate:
            values = []
            for source, unary_name in ((unit.input1, unit.unary1), (unit.input2, unit.unary2)):
                unary = self.unary[unary_name]
                values.append(unary.fn(outputs[source], next_parameter() if unary.uses_parameter else None))
            binary = self.binary[unit.binary]
            outputs.append(binary.fn(*values, next_parameter() if binary.uses_parameter else None))
        return outputs[-1]


def _apply_template(template: str, operand: str) -> str:
    """Fills a unary's template, dropping its parentheses around an operand that needs none (`x^2`, not `(x)^2`)."""
    if _wrapped_in_one_pair(operand) or " " not in operand:
        template = re.sub(r"(?<![a-z])\(\{\}\)", "{}", template)  # `({})^2` -> `{}^2`; `sin({})` stays
    return template.format(operand)


def _wrapped_in_one_pair(text: str) -> bool:
    """True for `(a + b)`, false for `(a) * (b)`: the outer parentheses enclose the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and index < len(text) - 1:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """What a search may build: subsets of a language's functions and the number of core units per candidate."""

    language: Language
    binaries: tuple[str, ...]
    unaries: tuple[str, ...]
    num_units: int

    def __post_init__(self):
        for name in self.binaries:
            lookup(self.language.binary, name, "binary function")
        for name in self.unaries:
            lookup(self.language.unary, name, "unary function")
        if not self.binaries or not self.unaries or self.num_units < 1:
            raise ValueError(
                f"need at least one binary, one unary and one core unit, got binaries={self.binaries}, "
                f"unaries={self.unaries}, num_units={self.num_units}"
            )

    def sizes(self) -> dict[str, int]:
        """Choices per decision kind; an input decision of unit i may only use the first num_operands + i."""
        num_inputs = len(self.language.operands) + self.num_units - 1
        return {"binary": len(self.binaries), "input": num_inputs, "unary": len(self.unaries)}

    @property
    def num_decisions(self) -> int:
        return len(DECISIONS) * self.num_units

    def decode(self, actions: Sequence[int]) -> Candidate:
        """actions: [num_decisions] ints in DECISIONS order per unit -> the candidate they choose."""
        units = []
        for i in range(self.num_units):
            b, in1, in2, u1, u2 = (int(a) for a in actions[len(DECISIONS) * i : len(DECISIONS) * (i + 1)])
            units.append(CoreUnit(self.binaries[b], in1, self.unaries[u1], in2, self.unaries[u2]))
        return self.language.validate(units)

    def encode(self, candidate: Sequence[CoreUnit]) -> np.ndarray:
        """The inverse of `decode`: int32 [num_decisions]."""
        if len(candidate) != self.num_units:
            raise ValueError(f"candidate has {len(candidate)} core units, the vocabulary has {self.num_units}")
        actions = []
        for unit in candidate:
            actions += [
                self.binaries.index(unit.binary),
                unit.input1,
                unit.input2,
                self.unaries.index(unit.unary1),
                self.unaries.index(unit.unary2),
            ]
        return np.asarray(actions, np.int32)

    def one_unit_candidates(self) -> list[Candidate]:
        """Every one-unit candidate over the vocabulary, one per distinct readable name, in a fixed order
        (binary, input 1, unary 1, input 2, unary 2; the first of equal names is kept)."""
        operands = range(len(self.language.operands))
        seen: dict[str, Candidate] = {}
        for binary, input1, unary1, input2, unary2 in itertools.product(
            self.binaries, operands, self.unaries, operands, self.unaries
        ):
            candidate = self.language.validate([CoreUnit(binary, input1, unary1, input2, unary2)])
            seen.setdefault(self.language.readable_name(candidate), candidate)
        return list(seen.values())

    def sample(self, rng: np.random.Generator) -> Candidate:
        """A uniformly random candidate of num_units units: every decision uniform over its valid choices."""
        actions = []
        for unit in range(self.num_units):
            for kind in DECISIONS:
                actions.append(rng.integers(self._num_choices(kind, unit)))
        return self.decode(actions)

    def mutate(self, candidate: Sequence[CoreUnit], rng: np.random.Generator) -> Candidate:
        """One decision of one unit changed to another valid choice: a binary, a unary or an input.

        The decision is uniform over those that have another choice, and its new value uniform over the others,
        so the result is always a different, valid candidate of the same vocabulary."""
        actions = self.encode(candidate)
        mutable = [
            index
            for index in range(self.num_decisions)
            if self._num_choices(DECISIONS[index % len(DECISIONS)], index // len(DECISIONS)) > 1
        ]
        if not mutable:
            raise ValueError(f"nothing to mutate: every decision of {self} has a single choice")
        index = mutable[rng.integers(len(mutable))]
        choices = self._num_choices(DECISIONS[index % len(DECISIONS)], index // len(DECISIONS))
        offset = 1 + rng.integers(choices - 1)  # any choice but the current one
        actions[index] = (actions[index] + offset) % choices
        return self.decode(actions)

    def _num_choices(self, kind: str, unit: int) -> int:
        if kind == "input":
            return len(self.language.operands) + unit
        return self.sizes()[kind]
