"""The one exception type users see.

Library code raises :class:`WavegenError` for anything the user can fix (a bad file, a bad
config value, a mismatched mel). The CLI prints its message as one line and exits non-zero; any
other exception is a bug and its traceback is shown only with ``--debug``.
"""


class WavegenError(Exception):
    """A problem with the user's input, with a message that names the file or field."""


class OutputError(WavegenError):
    """Writing an output failed (no space left, permission denied, read-only file system, ...).

    Raised with the path that could not be written; never a problem of one input file, so a
    pass over many inputs (preprocessing) stops on it instead of skipping the input.
    """
