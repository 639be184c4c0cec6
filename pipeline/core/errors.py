"""The one exception type for bad input.

Why a type of its own: the command line must tell a user's mistake (a typo in a config key, a
missing file, a malformed line) from a bug in samtrack. A user error is printed as one line naming
the file, key, line or frame, with exit code 2; any other exception is a bug and keeps its
traceback (exit 1). Catching ``ValueError`` for that would turn internal bugs into plausible
"bad input" messages.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; ``str()`` is one line naming the culprit."""


class ConfigError(UserError):
    """An invalid configuration value, key or file."""


class InputError(UserError):
    """An input file or folder that is missing or unusable (video, masks, weights)."""
