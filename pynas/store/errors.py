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
        super().__init__(f"field '{field}': expected {expected}, got {got!r}")

    def within(self, parent: str) -> "FieldError":
        """The same error for a field nested in `parent` (a device's 'os' -> 'device.os')."""
        return FieldError(f"{parent}.{self.field}", self.expected, self.got)
