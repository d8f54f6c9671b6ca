"""The base of every error meant for the user: one line saying what, which value, what is allowed.

Stages turn these into `error: ...` with no traceback (see cli.run); anything else is a bug and
keeps its traceback. Kept free of imports so that catching it costs nothing.
"""


class SqueezeError(Exception):
    """A failure the user can fix from its message alone."""


class DataError(SqueezeError, ValueError):
    """Bad or unreadable data; the message is one line for the user."""
