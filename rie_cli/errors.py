"""The one exception type the core library raises for problems a user can fix.

The CLI catches `RieError` at its edge and prints its message as one red line with
exit code 1 (bad input, missing files, incompatible checkpoints). Anything else is a
bug and keeps its traceback.
"""


class RieError(Exception):
    """A user-facing error: the message is shown as it is, on one line.

    A message that names one of the caller's settings writes it as `{name}` and lists
    it in `arguments`: `str(error)` (what the Python API shows) spells it as the API's
    argument (`min_score`), and the CLI as its option (`--min-score`,
    `rie_cli.cli.common.cli_errors`), so neither names the other's words.
    """

    def __init__(self, message: str, *, arguments: tuple[str, ...] = ()):
        self.template, self.arguments = message, tuple(arguments)
        super().__init__(self.render(lambda name: name))

    def render(self, spell) -> str:
        """The message with each argument spelt by `spell(name)`."""
        text = self.template
        for name in self.arguments:
            text = text.replace("{" + name + "}", spell(name))
        return text


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


def install_hint(extra: str) -> str:
    """How an optional extra of pyproject.toml is installed, in the one wording that errors,
    help texts and docs use (rie is installed from its clone, not from PyPI)."""
    return f'pip install -e ".[{extra}]" in the rie clone'
