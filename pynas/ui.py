"""Terminal output for the command line and the benchmarks: tables and progress, drawn by rich.

* `table(header, rows, right=...)`: a plain-text table (columns as wide as their widest cell, a
  rule under the header, numbers right-aligned), the same on a terminal and in a log file.
* `Progress(total)`: a progress bar on a terminal; where output goes to a file or a CI log a bar
  would be noise, so there a line every `LOG_SECONDS` says how far it is.
"""
from __future__ import annotations

import io
import sys
import time

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress
from rich.table import Table
from rich.text import Text

LOG_SECONDS = 10.0
# Columns two spaces apart, a dashed rule under the header: plain ASCII that reads the same in a
# terminal, a log file and the README's code blocks.
_RULE_UNDER_HEADER = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def table(header: list[str], rows: list[list], right=()) -> str:
    """The rows as a text table; columns whose index is in `right` right-aligned."""
    grid = Table(box=_RULE_UNDER_HEADER, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True,
                 header_style="", highlight=False)
    for i, name in enumerate(header):
        grid.add_column(Text(str(name)), justify="right" if i in right else "left", no_wrap=True)
    for row in rows:  # as Text: a cell such as "mbconv[gemm+dwconv]" is data, not rich markup
        grid.add_row(*(Text(str(cell)) for cell in row))
    out = io.StringIO()
    Console(file=out, width=1 << 16, color_system=None, force_terminal=False, soft_wrap=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())


class Progress:
    """`update(done, label)` as items finish, `close()` at the end (also as a context manager)."""

    def __init__(self, total: int, stream=None, description: str = ""):
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.start, self.last = time.monotonic(), 0.0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        if self.tty:
            self._bar = _RichProgress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[label]}"),
                                      console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task(description, total=max(total, 1), label="")
            self._bar.start()

    def update(self, done: int, label: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, label=label[:60])
            return
        now = time.monotonic()
        if now - self.last < LOG_SECONDS and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = f"{elapsed / done * (self.total - done):.0f}s" if done else "?"
        self.stream.write(f"{done}/{self.total} {elapsed:.0f}s eta {eta}  {label[:60]}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
