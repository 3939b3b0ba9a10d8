"""The error types of the measurement store."""
from __future__ import annotations


class StoreError(ValueError):
    """A store file, portable file or value pynas cannot use. The message names the file (and line,
    and field) and says what was expected and what was found. A ValueError, so the command line
    reports it as a one-line error without a traceback."""


class FieldError(StoreError):
    """One field holds a bad value. `field` is its dotted path in a record ('stats.median_ms'), so a
    reader of a portable file can name the line and the field."""

    def __init__(self, field: str, expected: str, got: object):
        self.field, self.expected, self.got = field, expected, got
        super().__init__(f"field '{field}': expected {expected}, got {shown(got)}")

    def within(self, parent: str) -> "FieldError":
        """The same error for a field nested in `parent` (a device's 'os' -> 'device.os')."""
        return FieldError(f"{parent}.{self.field}", self.expected, self.got)


def shown(value: object, limit: int = 300) -> str:
    """repr(value) for an error message: cut to `limit` characters (a 1 MB string is no message),
    and a value nested too deeply for repr named as such."""
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= limit else text[:limit - 3] + "..."
