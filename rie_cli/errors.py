"""The one exception type the core library raises for problems a user can fix.

The CLI catches `RieError` at its edge and prints its message as one red line with
exit code 1 (bad input, missing files, incompatible checkpoints). Anything else is a
bug and keeps its traceback.
"""


class RieError(Exception):
    """A user-facing error: the message is shown as it is, on one line."""


def choices(options, limit: int = 12) -> str:
    """`options` as a comma-separated list for an error line, cut after `limit` names so
    that a file with eighty actions still gives a readable line."""
    names = [str(o) for o in options]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
