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


def did_you_mean(name: str, known, limit: int = 4) -> str:
    """'; did you mean 'walk 001.1', 'walk 001.2'?' for an unknown `name`, or '' when
    nothing is near. Names that `name` begins (a take of an action: 'walk 001' ->
    'walk 001.1') come first, then the closest spellings."""
    import difflib

    known = [str(k) for k in known]
    extending = [k for k in known if k.startswith(name)]
    close = difflib.get_close_matches(name, known, n=limit)
    picks = list(dict.fromkeys(extending + close))[:limit]
    return f"; did you mean {', '.join(repr(p) for p in picks)}?" if picks else ""
