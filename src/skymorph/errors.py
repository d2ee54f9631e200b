"""One exception family. Messages name the file, the group/field and what was expected."""


class SkymorphError(Exception):
    """Base of every error skymorph raises for a user's mistake or bad input."""


class InputError(SkymorphError):
    """An input file, group, field or value is missing, corrupt or out of range."""


class OutputExistsError(SkymorphError):
    """An output would overwrite an existing file without ``overwrite=True``."""


class ConfigError(SkymorphError):
    """A command-line option or configuration value is invalid."""


class Interrupted(SkymorphError):
    """The user stopped a long job (Ctrl-C); the message says what was kept and how to resume."""
