"""A run's CSV histories: metrics.csv and tracked_weights.csv, one row a generation.

Rows are appended and flushed as generations end; a resume truncates the file to the
generations its checkpoint holds, and a torn last line (a kill or a full disk mid-write)
is dropped when the file is read.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from genreg.atomic import named, write_atomic
from genreg.errors import GenregError

#: metrics.csv columns renamed when genreg became task-agnostic: old name -> new name.
LEGACY_COLUMNS = {"best_trust": "best_fitness", "mean_trust": "mean_fitness",
                  **{f"digit_{d}": f"class_{d}" for d in range(10)}}


class History:
    """A CSV file with one row a generation; ``truncate(g)`` drops rows of generation >= g
    (and renames ``LEGACY_COLUMNS`` in the header of a file written by an older genreg)."""

    def __init__(self, path, columns):
        self.path = Path(path)
        self.columns = list(columns)
        self._fh = None

    def truncate(self, generation: int) -> None:
        if not self.path.exists():
            return
        try:
            with open(self.path, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise GenregError(f"{self.path} is not a readable history CSV ({type(exc).__name__}); move it away "
                              "to resume without it") from None
        header = [LEGACY_COLUMNS.get(c, c) for c in rows[0]] if rows else []
        if rows and header != self.columns:
            raise GenregError(f"{self.path} has other columns than this run writes ({', '.join(header[:4])}, ...); "
                              "it is not this run's history")
        keep = [header] + [r for r in _complete(rows, self.path) if int(r[0]) < generation] if rows else []
        last = int(keep[-1][0]) if len(keep) > 1 else -1
        if rows and last < generation - 1:  # a file cut short (or emptied): say so, the run goes on
            print(f"genreg: warning: {self.path} holds generations up to {last}, not {generation - 1}: generations "
                  f"{last + 1}-{generation - 1} are missing from it (the file was cut short)")
        text = io.StringIO(newline="")
        csv.writer(text).writerows(keep)
        write_atomic(self.path, text.getvalue().encode("utf-8"))

    def append(self, row) -> None:
        try:
            if self._fh is None:
                new = not self.path.exists() or self.path.stat().st_size == 0
                self._fh = open(self.path, "a", newline="")
                if new:
                    csv.writer(self._fh).writerow(self.columns)
            csv.writer(self._fh).writerow(row)
            self._fh.flush()
        except OSError as exc:  # a full disk: say which file (a write's error names none)
            raise named(exc, self.path) from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _complete(rows: list, path) -> list:
    """The data rows of a history CSV (``rows[0]`` is the header), without a torn last line (a write
    cut short by a full disk or a kill); GenregError naming the file and row if any other row is damaged."""
    width, body = len(rows[0]), [r for r in rows[1:] if r]

    def whole(r):
        return len(r) == width and r[0].isdigit()

    if body and not whole(body[-1]):
        body = body[:-1]
    for i, r in enumerate(body):
        if not whole(r):
            raise GenregError(f"{path} is damaged at row {i + 2}: expected {width} values starting with a generation")
    return body


def read_history(path) -> dict:
    """Read a history CSV into ``{column: float array}`` (a torn last line is left out; GenregError
    naming the file if it is not a history CSV)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return {}
        header, body = [LEGACY_COLUMNS.get(c, c) for c in rows[0]], _complete(rows, path)
        data = np.array([[float(v) if v != "" else np.nan for v in r] for r in body],
                        dtype=np.float64).reshape(-1, len(header))
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise GenregError(f"{path} is not a readable history CSV ({type(exc).__name__}: {str(exc)[:80]})") from None
    return {name: data[:, i] for i, name in enumerate(header)}
