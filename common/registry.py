"""Name lookup for the explicit tables (models, datasets, optimisers, activations, ...).

Every selectable component lives in a plain dict literal next to its definition, so a name can be grepped.
`lookup` is the one place that turns a bad name into an error that lists the valid choices.
"""

from collections.abc import Mapping
from typing import TypeVar

from common.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError, ValueError):
    """A config named something that is not in the table for its kind."""


def lookup(table: Mapping[str, T], name: str, kind: str) -> T:
    """Returns `table[name]`, or raises UnknownNameError naming `kind`, the bad name and the valid choices."""
    try:
        return table[name]
    except (KeyError, TypeError):
        choices = ", ".join(sorted(table))
        raise UnknownNameError(f"unknown {kind} {name!r}; valid choices: {choices}") from None
