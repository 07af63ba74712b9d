"""What a command writes into its out folder, told apart from everything else there.

A folder that holds a command's settings file (``scan.json``, ``explain.json``) is that command's
earlier run: it is resumed or reused. Any other folder that is not empty is the user's, and a command
refuses to write into it without ``--overwrite``. Even with ``--overwrite``, only the command's own
files (named by :class:`OwnFiles`'s patterns) are removed; other files stay where they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.\d+\.(tmp|stale)$")  # what save_atomically and the lock write first


@dataclass(frozen=True)
class OwnFiles:
    """A command's files in its out folder: ``marker`` (its settings file), ``files`` (patterns relative to the
    folder, ``*`` within one name) and ``folders`` (its sub-folders, removed only once empty)."""

    command: str
    marker: str
    files: tuple[str, ...]
    folders: tuple[str, ...] = ()
    always: tuple[str, ...] = ()  # files that may lie in any folder of it without a marker (the lock)

    def owns(self, relative: str | PurePosixPath) -> bool:
        """Whether the file ``relative`` (to the folder) is one this command writes, or a temporary of one."""
        path = PurePosixPath(relative)
        found = _TEMPORARY.match(path.name)
        if found:
            path = path.with_name(found["name"])
        return any(_matches(path, pattern) for pattern in (self.marker, *self.files, *self.always))

    def foreign(self, folder: Path, *, limit: int | None = None) -> list[str]:
        """The files in ``folder`` that this command did not write (relative paths, sorted; at most ``limit``).

        Without the marker, every file but the lock is foreign: the folder holds no earlier run. With it,
        the folder's top level may also hold what other commands wrote there (the views of a scan);
        inside the command's own sub-folders, only its own files belong. Only what is needed is walked:
        the first ``limit`` files of a folder without the marker, the own sub-folders of one with it."""
        if not folder.is_dir():
            return []
        marked = (folder / self.marker).is_file()
        found = []
        for relative in _files(folder, None if not marked else self._top_folders()):
            if self._is_lock(relative):
                continue
            if not marked or (relative.parent != PurePosixPath(".") and not self.owns(relative)):
                found.append(str(relative))
                if limit is not None and len(found) >= limit:
                    break
        return sorted(found)

    def check(self, folder: Path, overwrite: bool) -> None:
        """A one-line ``ValueError`` when ``folder`` holds files that are not this command's, unless ``overwrite``."""
        if overwrite:
            return
        foreign = self.foreign(folder, limit=4)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" and more" if len(foreign) > 3 else "")
            raise ValueError(f"{str(folder)!r} holds files that `convscope {self.command}` did not write ({shown}); "
                             f"give an empty or new --out folder, or pass --overwrite to write there anyway (only "
                             f"{self.command}'s own files are replaced; others are kept)")

    def clear(self, folder: Path) -> None:
        """Remove this command's files from ``folder`` (never the lock), then its sub-folders left empty."""
        if not folder.is_dir():
            return
        for relative in self.owned(folder):
            (folder / relative).unlink(missing_ok=True)
        for top in self._top_folders():
            if not (folder / top).is_dir() or (folder / top).is_symlink():
                continue
            for root, _folders, _names in os.walk(folder / top, topdown=False):
                relative = PurePosixPath(Path(root).relative_to(folder).as_posix())
                if any(_matches(relative, pattern) for pattern in self.folders):
                    try:
                        Path(root).rmdir()  # only when empty: a user's file inside keeps its folder
                    except OSError:
                        pass

    def owned(self, folder: Path) -> list[PurePosixPath]:
        """This command's files in ``folder``, temporaries included, the lock left out (relative, sorted)."""
        return sorted(relative for relative in _files(folder, self._top_folders())
                      if self.owns(relative) and self._inside_own(relative) and not self._is_lock(relative))

    def temporaries(self, folder: Path) -> list[Path]:
        """The temporary files this command's interrupted writers left in ``folder`` (never the lock's)."""
        return [folder / relative for relative in self.owned(folder) if _TEMPORARY.match(relative.name)]

    def _top_folders(self) -> set[str]:
        return {PurePosixPath(pattern).parts[0] for pattern in self.folders}

    def _inside_own(self, relative: PurePosixPath) -> bool:
        """Whether ``relative`` lies at the top of the folder or below one of the command's own sub-folders."""
        parents = [parent for parent in relative.parents if parent != PurePosixPath(".")]
        return not parents or any(_matches(parent, pattern) for parent in parents for pattern in self.folders)

    def _is_lock(self, relative: PurePosixPath) -> bool:
        found = _TEMPORARY.match(relative.name)
        name = relative.with_name(found["name"]) if found else relative
        return any(_matches(name, pattern) for pattern in self.always)


def _files(folder: Path, below: set[str] | None = None) -> Iterator[PurePosixPath]:
    """Every entry of ``folder`` that is not a directory (files, links, pipes …), relative, one at a time; with
    ``below``, only those at the top and under the sub-folders named there."""
    for root, folders, names in os.walk(folder):
        base = Path(root).relative_to(folder)
        folders.sort()
        if below is not None and base == Path("."):
            folders[:] = [name for name in folders if name in below]
        links = [name for name in folders if (Path(root) / name).is_symlink()]  # a link is not descended
        for name in sorted([*names, *links]):
            yield PurePosixPath((base / name).as_posix())


def _matches(path: PurePosixPath, pattern: str) -> bool:
    """``path`` matches ``pattern`` part by part (``*`` never crosses a ``/``)."""
    parts = PurePosixPath(pattern).parts
    return len(path.parts) == len(parts) and all(fnmatchcase(a, b) for a, b in zip(path.parts, parts, strict=True))
