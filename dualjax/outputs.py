"""Output folders and files: checked before the work, written atomically, the summary last.

Every command that writes a folder (``linear``, ``montecarlo``, ``train``, ``reproduce``)
follows the same four rules (docs/reliability.md):

1. **Checked first.** :func:`check` runs after the inputs are validated and before any work:
   ``OUT`` must be a folder or creatable (its nearest existing ancestor a writable folder,
   tested by creating and removing a probe file), and either empty or ``overwrite=True``
   (``--overwrite``). Nothing is created or deleted by a check.
2. **Only what the command owns is cleared.** :func:`clear` removes the names (or glob
   patterns) a command writes, the summary first, and leftovers of interrupted writes; other
   files in ``OUT`` stay.
3. **Atomic files.** :func:`atomic_path` hands out a temporary name in the same folder,
   ``.NAME.tmp-PID.EXT``, and renames it onto ``NAME`` with :func:`os.replace` once the file is
   written and flushed to disk. A rename within one folder is atomic on POSIX file systems, so a
   reader, or a process killed at any moment (SIGKILL included), sees the old file, the new one,
   or none: never a torn one. Leftover ``.*.tmp-*`` files mark an interrupted write.
4. **The summary last.** The file that describes the others (``summary.json``,
   ``linear_summary.json``, ``report.json``) is written after them, so a folder that lacks its
   summary is incomplete: see :func:`is_complete`.

JSON is written strictly (RFC 8259, :func:`dumps_strict`): a non-finite float becomes ``null``
and its place is listed under ``"non_finite"``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

TMP_MARK = ".tmp-"


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _writable(folder: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".dualjax-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise ValueError(f"output folder {str(folder)!r} is not writable ({err.strerror})") from None


def check(out: str | os.PathLike, *, overwrite: bool = False, hint: str = "") -> Path:
    """Validate the output folder ``out`` before any work (rule 1); return it as a Path.

    Raises ValueError if ``out`` is a file, cannot be created (a file or a non-writable folder
    on its path) or is not writable, or is a non-empty folder and ``overwrite`` is False; the
    message suggests ``hint`` (e.g. ``--resume``) and ``--overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder")
    if out.is_dir():
        entries = _entries(out)
        if entries and not overwrite:
            shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
            raise ValueError(f"output folder {str(out)!r} is not empty ({shown}); "
                             f"{hint + ', or ' if hint else ''}pass --overwrite to replace what this command "
                             "wrote there, or choose another folder")
        _writable(out)
        return out
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create output folder {str(out)!r}: {str(ancestor)!r} is not a folder")
    _writable(ancestor)
    return out


def clear(out: str | os.PathLike, owned: Sequence[str]) -> list[str]:
    """Remove from ``out`` the entries matching ``owned`` (names or glob patterns; the first,
    the summary, goes first so the folder reads as incomplete from then on) and leftovers of
    interrupted writes; returns the names removed. Other entries stay (rule 2)."""
    out = Path(out)
    if not out.is_dir():
        return []
    removed = []
    for pattern in [*owned, f".*{TMP_MARK}*", ".dualjax-probe-*"]:
        for name in _entries(out):
            if fnmatch.fnmatchcase(name, pattern):
                path = out / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                removed.append(name)
    return removed


def prepare(out: str | os.PathLike, owned: Sequence[str], *, overwrite: bool = False) -> Path:
    """Create ``out`` (with parents) and, with ``overwrite``, :func:`clear` what it owns."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear(out, owned)
    return out


def is_complete(out: str | os.PathLike, summary: str) -> bool:
    """Whether ``out`` holds its ``summary`` file (rule 4) and no leftover of an interrupted write."""
    out = Path(out)
    return (out / summary).is_file() and not any(TMP_MARK in name for name in _entries(out))


def tmp_path(path: str | os.PathLike) -> Path:
    """The temporary name of ``path`` in its own folder (same suffix, so writers that pick the
    format from it, like ``savefig``, still work)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; on success it is synced and renamed onto
    ``path`` (rule 3), on an exception removed."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` to ``path`` atomically as strict JSON (:func:`dumps_strict`)."""
    return write_text(path, dumps_strict(obj, indent))


def strict(obj: Any, where: str = "") -> tuple[Any, dict[str, str]]:
    """``obj`` with NumPy values as Python ones and every non-finite float as ``None``, and
    ``{json.path: "nan" | "inf" | "-inf"}`` of the values so replaced."""
    bad: dict[str, str] = {}

    def walk(x, at):
        if isinstance(x, dict):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, np.ndarray):
            return walk(x.tolist(), at)
        if isinstance(x, (np.bool_,)):
            return bool(x)
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, (float, np.floating)):
            if not math.isfinite(x):
                bad[at] = str(float(x))
                return None
            return float(x)
        return x

    return walk(obj, where), bad


def dumps_strict(obj: Any, indent: int = 2) -> str:
    """Strict JSON text of ``obj``: non-finite floats as ``null``; if ``obj`` is a dict, the
    replaced places are listed in ``obj["non_finite"]`` (e.g. the fraction of an empty set)."""
    clean, bad = strict(obj)
    if bad and isinstance(clean, dict):
        clean["non_finite"] = {"note": "these values were not finite numbers (NaN / ±inf, e.g. a share of "
                                       "zero trials) and are written as null", "values": bad}
    return json.dumps(clean, indent=indent, allow_nan=False)
