"""Where oransim writes, and how: checked before any work, published atomically, never clobbering.

Every command that writes (``run``, ``evaluate``, ``report``, and any later one) goes through this
module, in two steps:

1. ``check_folder_target`` / ``check_file_target`` before the work starts: the name fits the file
   system (including the temporary sibling's longer name), no part of the way is a file, the
   nearest existing folder is writable (tried, not guessed), there is room for the estimated
   output, and an existing target may be replaced. Problems are ``OutputError``: one line naming
   the path.
2. ``staging_folder`` + ``publish_folder`` / ``publish_file`` after it: the output is built in a
   temporary sibling (``.NAME.tmp-XXXXXXXX``, created with the user's umask, not 0700; a run may
   write its tables there while it goes), then renamed into place
   with ``renameat2``: ``RENAME_NOREPLACE`` when nothing may be replaced, so of two runs racing
   for one folder the second fails clearly instead of silently replacing the first;
   ``RENAME_EXCHANGE`` to replace, so the old folder is swapped out in one step and removed only
   after the new one is in place. Whatever happens (an error, a signal unwinding the stack), the
   temporary sibling is removed and the target holds either the old or the new output, whole.

What may be replaced (``--overwrite``): a folder is replaced only if it is an oransim output
folder, i.e. its ``manifest.json`` carries the marker ``MARKER``, and it holds nothing but the
files its manifest lists (plus ``report.png``): a user's notes put in a run folder are never
deleted, nor is any other folder or a file. A file target (a table, a figure) is replaced only if
the caller allows it and it is a regular file with the expected suffix.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

#: Key of the manifest that marks a folder written by oransim (value: format version).
MARKER = "oransim_run"
MANIFEST = "manifest.json"
#: Files oransim adds to an output folder after it was published (``oransim report``'s figure).
ADDED_LATER = frozenset({"report.png"})
#: What folders written before manifests listed their files hold.
LEGACY_FILES = frozenset({MANIFEST, "packets.parquet", "tti.parquet", "decisions.parquet", "timing.parquet"})
_TMP_TAG = ".tmp-"
_TMP_EXTRA = 1 + len(_TMP_TAG) + 8  # ".NAME.tmp-XXXXXXXX"

#: Paths published by this process (the CLI's signal message says what was written before it stopped).
published: list[Path] = []


class OutputError(OSError):
    """An output path cannot be used or an output could not be published (one line, names the path)."""


# ------------------------------------------------------------------------------ renameat2
_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (AttributeError, OSError):  # not Linux / old libc: the fallbacks below
    _renameat2 = None
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False if the system or file system does not support it."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (never replaces it)."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if src.is_dir():
        os.mkdir(dst)  # claim the name (fails if taken), then replace our own empty folder
        try:
            os.rename(src, dst)
        except BaseException:
            os.rmdir(dst)
            raise
    else:
        os.link(src, dst)  # fails if taken
        os.unlink(src)


def exchange(src: Path, dst: Path) -> None:
    """Swap ``src`` and ``dst`` (both exist): afterwards ``dst`` holds the new and ``src`` the old."""
    if _rename2(src, dst, _RENAME_EXCHANGE):
        return
    old = src.with_name(src.name + ".old")
    rename_noreplace(dst, old)
    try:
        rename_noreplace(src, dst)
    except BaseException:
        rename_noreplace(old, dst)  # put the old folder back
        raise
    os.rename(old, src)


# --------------------------------------------------------------------------------- checks
def _absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(os.fspath(path)))  # normalises "..", keeps a symlink as the last part


def _nearest_existing(p: Path) -> Path:
    for anc in (p, *p.parents):
        if os.path.lexists(anc):
            return anc
    return Path("/")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def show(p: Path | str, width: int = 100) -> str:
    """A path for a message: whole if short, else its start and end."""
    text = str(p)
    return text if len(text) <= width else f"{text[:40]}...{text[-(width - 43):]}"


def _check_lengths(p: Path, label: str) -> Path:
    """Name and path lengths for ``p`` and its temporary sibling; returns the nearest existing folder."""
    if not p.name or p.name in (".", ".."):
        raise OutputError(f"{label}: {show(p)} is not a usable name")
    base = _nearest_existing(p.parent)
    try:
        name_max = os.pathconf(base, "PC_NAME_MAX")
        path_max = os.pathconf(base, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    parts = [p, *p.parents]
    for part in parts:
        if part == base:
            break
        limit = name_max - (_TMP_EXTRA if part == p else 0)
        if len(os.fsencode(part.name)) > limit:
            raise OutputError(f"{label}: {show(part.name, 60)}: name too long ({len(os.fsencode(part.name))} bytes; "
                              f"at most {limit} here)")
    longest = len(os.fsencode(str(p))) + _TMP_EXTRA + 32  # the temporary sibling and a file in it
    if longest > path_max:
        raise OutputError(f"{label}: {show(p)}: path too long ({longest - _TMP_EXTRA - 32} bytes; at most "
                          f"{path_max - _TMP_EXTRA - 32} here)")
    return base


def _check_way(p: Path, base: Path, label: str, need_bytes: float) -> None:
    """The folders on the way to ``p``, writability and free space (lengths already checked)."""
    if not base.is_dir():
        raise OutputError(f"{label}: {show(base)} is a file, not a folder: cannot write {show(p)}")
    probe = base / f".oransim-probe-{secrets.token_hex(4)}"
    try:  # the only sure test of writability (permissions, ACLs, read-only mounts)
        os.mkdir(probe)
    except OSError as exc:
        raise OutputError(f"{label}: cannot write in {show(base)}: {_why(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)
    if need_bytes > 0:
        free = shutil.disk_usage(base).free
        if free < need_bytes:
            raise OutputError(f"{label}: {show(base)} has {free / 2**20:.1f} MiB free; the output needs about "
                              f"{need_bytes / 2**20:.1f} MiB")


def run_folder_problem(path: str | Path) -> str | None:
    """Why ``path`` may not be replaced by ``--overwrite``, or None if it is an oransim output folder."""
    p = Path(path)
    try:
        manifest = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "has no manifest.json, so it is not an oransim run folder"
    except (OSError, UnicodeDecodeError, ValueError):
        return "its manifest.json is unreadable, so it is not recognisably an oransim run folder"
    if not isinstance(manifest, dict) or MARKER not in manifest:
        return f"its manifest.json has no '{MARKER}' marker, so it is not an oransim run folder"
    listed = manifest.get("files")
    own = (set(listed) | {MANIFEST}) if isinstance(listed, list) else set(LEGACY_FILES)
    try:
        foreign = sorted(e for e in os.listdir(p) if e not in own | ADDED_LATER)
    except OSError as exc:
        return f"cannot be listed ({_why(exc)})"
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"holds files oransim did not write ({shown}); move them away first"
    return None


def check_folder_target(path: str | Path, overwrite: bool, need_bytes: float = 0.0, label: str = "--out") -> Path:
    """Check an output folder before any work; returns it as an absolute path. ``OutputError`` if unusable."""
    p = _absolute(path)
    base = _check_lengths(p, label)
    try:
        if os.path.islink(p):
            raise OutputError(f"{label}: {show(p)} is a symbolic link; give the folder itself")
        if p.exists():
            if not p.is_dir():
                raise OutputError(f"{label}: {show(p)} is a file, not a run folder; oransim never replaces it")
            if not overwrite:
                raise OutputError(f"{label}: {show(p)} already exists (pass --overwrite to replace a run folder, "
                                  f"or choose another --out)")
            problem = run_folder_problem(p)
            if problem:
                raise OutputError(f"{label}: {show(p)} {problem}; --overwrite replaces only oransim run folders")
        _check_way(p, base, label, need_bytes)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{label}: {show(p)}: {_why(exc)}") from None
    return p


def check_file_target(path: str | Path, suffix: str, overwrite: bool, label: str) -> Path:
    """Check an output file (``suffix`` such as ``.csv``) before any work; returns it as an absolute path."""
    p = _absolute(path)
    if p.suffix.lower() != suffix:
        raise OutputError(f"{label}: {show(p.name, 60)} must end in {suffix}")
    base = _check_lengths(p, label)
    try:
        if os.path.islink(p):
            raise OutputError(f"{label}: {show(p)} is a symbolic link; give the file itself")
        if p.exists():
            if not p.is_file():
                raise OutputError(f"{label}: {show(p)} exists and is not a file")
            if not overwrite:
                raise OutputError(f"{label}: {show(p)} already exists (pass --overwrite to replace it)")
        _check_way(p, base, label, 0.0)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{label}: {show(p)}: {_why(exc)}") from None
    return p


# ------------------------------------------------------------------------------ publishing
def _temp_sibling(p: Path) -> Path:
    return p.with_name(f".{p.name}{_TMP_TAG}{secrets.token_hex(4)}")


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staging_folder(path: str | Path) -> Path:
    """A new, empty temporary sibling of ``path`` to build an output folder in (same file system,
    so publishing is one rename; mode 0777 & ~umask, as any folder the user creates). Missing
    parent folders are created. ``publish_folder`` removes it whatever happens."""
    p = _absolute(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(p)
    os.mkdir(tmp)
    return tmp


def publish_folder(path: str | Path, staging: Path, manifest: dict, overwrite: bool = False) -> Path:
    """Add ``manifest.json`` (with ``MARKER`` and the list of files) to ``staging`` (from
    ``staging_folder(path)``, holding everything else) and move it to ``path`` atomically (see the
    module doc). ``staging`` is gone afterwards, published or removed. Returns ``path``."""
    p = _absolute(path)
    tmp = Path(staging)
    try:
        if tmp.parent != p.parent or not tmp.name.startswith(f".{p.name}{_TMP_TAG}"):
            raise ValueError(f"{tmp} is not a staging folder of {p} (use staging_folder)")
        manifest = {**manifest, MARKER: manifest.get(MARKER, 1), "files": sorted({*os.listdir(tmp), MANIFEST})}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if overwrite and os.path.lexists(p):
            problem = run_folder_problem(p) if p.is_dir() and not p.is_symlink() else "is not a folder"
            if problem:
                raise OutputError(f"{p} {problem}; not replaced (this run's results were not written)")
            exchange(tmp, p)  # tmp now holds the old folder, removed below
        else:
            try:
                rename_noreplace(tmp, p)
            except FileExistsError:
                raise OutputError(f"{p} appeared while this run was working (another run writing there?); "
                                  f"it was left as it is and this run's results were not written") from None
        published.append(p)
        _fsync_dir(p.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return p


def publish_file(path: str | Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Write a file with ``write(tmp)`` (``tmp`` keeps the target's suffix) and move it to ``path``
    atomically; an existing file is replaced only if ``overwrite``. Returns ``path``."""
    p = _absolute(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}{_TMP_TAG}{secrets.token_hex(4)}{p.suffix}")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
        write(tmp)
        if overwrite:
            if os.path.lexists(p) and not p.is_file():
                raise OutputError(f"{p} is not a file; not replaced")
            os.replace(tmp, p)
        else:
            try:
                rename_noreplace(tmp, p)
            except FileExistsError:
                raise OutputError(f"{p} appeared meanwhile; it was left as it is and nothing was written") from None
        published.append(p)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return p


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
