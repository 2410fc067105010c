"""The one exception family lookalike raises at its library boundary.

The CLI turns any of these into a one-line message and a non-zero exit code;
the web server turns them into a 4xx JSON body.
"""


class LookalikeError(Exception):
    """Base of every error a user can cause or fix (bad input, missing model, locked index)."""


class IndexLockedError(LookalikeError):
    """Another process holds the index's writer lock."""


class ModelMismatchError(LookalikeError):
    """An index's vectors were made by another model than the one asked for."""


class IndexNotFoundError(LookalikeError):
    """No index exists at the given directory."""


class ModelNotFoundError(LookalikeError):
    """A model name is unknown, or its weights cannot be found."""


class ImageError(LookalikeError):
    """An image cannot be read or decoded; the message is the reason, one line."""


class StoreError(LookalikeError):
    """The index's files cannot be read or written (damaged, disk full, no permission)."""


class ExecutorError(LookalikeError):
    """A distributed executor (Ray) cannot be reached, started or run to the end."""


class LookalikeWarning(UserWarning):
    """Something was wrong and has been dealt with (a damaged cache rebuilt, say): the CLI
    prints it as one line on stderr."""
