"""Video lists in the reference V-JEPA format: one video per line, ``path label``.

Fields are separated by whitespace (the label, an integer >= 0, is the last field, so paths may
contain spaces); blank lines and lines starting with ``#`` are ignored; relative paths are
relative to the list file's folder.

**Confinement** (``confine=True``; ``confine_paths`` in the V-JEPA config). Off by default, as
the reference's lists hold absolute paths. On, every entry must stay inside the list's folder:
an absolute path, a ``..`` component or a symbolic link leading out is refused with a
ValueError naming the file and line, so a list from elsewhere cannot make the trainer read
arbitrary files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class VideoEntry:
    path: str
    label: int


def read_list(path: str | os.PathLike, *, confine: bool = False) -> list[VideoEntry]:
    """Entries of one list file (``path label`` per line; see the module doc); with ``confine``,
    an entry outside the list's folder is a ValueError naming its line."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"video list {str(path)!r} is not a regular file")
    if not path.is_file():
        raise FileNotFoundError(f"video list {str(path)!r} does not exist")
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.rsplit(maxsplit=1)
        if len(fields) != 2:
            raise ValueError(f"{path}:{lineno}: expected 'path label', got {line!r}")
        video, label = fields
        try:
            label_int = int(label)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: label must be an integer, got {label!r}") from None
        if label_int < 0:
            raise ValueError(f"{path}:{lineno}: label must be >= 0, got {label_int}")
        video_path = Path(video)
        if confine and (video_path.is_absolute() or ".." in video_path.parts
                        or not (path.parent / video_path).resolve().is_relative_to(path.parent.resolve())):
            raise ValueError(f"{path}:{lineno}: {video!r} is outside the list's folder (confine_paths=true "
                             "allows relative paths below it only)")
        if not video_path.is_absolute():
            video_path = path.parent / video_path
        entries.append(VideoEntry(str(video_path), label_int))
    if not entries:
        raise ValueError(f"video list {str(path)!r} has no entries")
    return entries


def write_list(path: str | os.PathLike, entries: Sequence[tuple[str, int]]) -> None:
    """Write a list file in the reference format (``path label`` per line)."""
    Path(path).write_text("".join(f"{p} {int(label)}\n" for p, label in entries))
