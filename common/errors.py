"""The errors a user can fix: a bad config value, an unknown name, missing data, a busy or mismatched workdir, a
checkpoint that does not fit. Scripts started with `common.app.run` print them as one line on stderr and exit
non-zero (`--verbose` adds the traceback); any other exception is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake in what was asked for (or a state of the machine), explained by its message alone."""

    exit_code = 2  # the shell's convention for a usage error


class ConfigError(UserError, ValueError):
    """A config field with a wrong type or value, a missing one, or one its section does not have."""


class WorkdirError(UserError):
    """The workdir cannot take this run: another run holds it, or it holds a run with a different config."""
