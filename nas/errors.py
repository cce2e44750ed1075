"""The one exception type for user errors: the CLI prints its message on one line and exits 2."""


class UsageError(ValueError):
    """Bad input from a user (file, field, preset, storage, budget). The message names what was
    wrong and what is allowed."""
