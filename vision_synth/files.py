"""Writing files so that readers never see half of one: atomic files, JSON, staged output folders.

Every room writes through these three: a file appears whole or not at all (`write_atomic`,
`write_json`), and an output folder appears complete or not at all (`staged_output`). Whatever is
being built carries the writer's process id in its hidden name (`.NAME.partial-PID-TOKEN`), so
the next run removes what a killed one left (`remove_stale_stages`, `remove_stale_stages_in`), and
`check_new_output` is the one rule of what a command may write over (only with --overwrite).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Iterator

from vision_synth.errors import DatasetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


# the TOKEN of this process's temp files: a count from a random start (8 hex digits, as
# secrets.token_hex(4) gives stage folders), cheaper than a random draw for every image written
_TOKENS = itertools.count(secrets.randbits(32))


def _create_beside(path: Path) -> tuple[str, int]:
    """A new file beside `path`, `.NAME.partial-PID-TOKEN` (left by a killed writer, removed by
    remove_stale_stages(_in)), created exclusively and with the usual permissions (0o666 less the
    umask, as open() gives); its folder is made when missing. Returns its path (str) and descriptor."""
    folder, name = os.path.split(os.fspath(path))
    while True:
        tmp = os.path.join(folder, f".{name}.partial-{os.getpid()}-{next(_TOKENS) & 0xFFFFFFFF:08x}")
        try:
            return tmp, os.open(tmp, _CREATE, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:
            if os.path.isdir(folder or "."):
                raise
            os.makedirs(folder, exist_ok=True)


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file to write `path` through: a temp file beside it, renamed to `path` when the block
    succeeds (readers see the old file or the whole new one) and removed when it fails."""
    path = Path(path)
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` (str as UTF-8) to `path` atomically, as `atomic_open` does (with plain system
    calls: this writes every image)."""
    tmp, fd = _create_beside(path)
    try:
        view = memoryview(data.encode() if isinstance(data, str) else data).cast("B")
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# one encoder for every compact line (json.dumps builds a new one per call when given options)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """JSON as every file of ours holds it: compact (COCO files, shard lines), or indented for files
    people read (reports, state), with non-ASCII characters kept as they are."""
    if indent is None:
        return _COMPACT(obj)
    return json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """`obj` as JSON (see `dumps_json`), written atomically."""
    write_atomic(path, dumps_json(obj, indent))


STAGE_KINDS = ("partial", "old")  # .OUT.partial-PID-TOKEN: being built; .OUT.old-PID-TOKEN: the replaced OUT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stage_path(out: Path, kind: str = "partial") -> Path:
    """The hidden name beside `out` that this process builds it under: .OUT.partial-PID-TOKEN."""
    out = Path(out)
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


_STAGE_TAIL = re.compile(r"(\d+)-[A-Za-z0-9_]{8}")  # PID-TOKEN (8 hex characters)


def _stage_pid(name: str) -> int | None:
    """The process id in a stage's name (.NAME.partial-PID-TOKEN, .NAME.old-PID-TOKEN), else None."""
    if not name.startswith("."):
        return None
    for kind in STAGE_KINDS:
        head, sep, tail = name.rpartition(f".{kind}-")
        match = _STAGE_TAIL.fullmatch(tail) if sep and head else None
        if match:
            return int(match.group(1))
    return None


def _remove_stale(stages) -> list[Path]:
    removed = []
    for stage in stages:
        pid = _stage_pid(stage.name)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            if stage.is_dir() and not stage.is_symlink():
                shutil.rmtree(stage, ignore_errors=True)
            else:
                stage.unlink(missing_ok=True)
            removed.append(stage)
    return removed


def remove_stale_stages(out: Path) -> list[Path]:
    """Remove the staging folders (or files) beside `out` left by runs that were killed (their process
    is gone); those of live runs stay. Returns what was removed."""
    out = Path(out)
    return _remove_stale(stage for kind in STAGE_KINDS for stage in out.parent.glob(f".{out.name}.{kind}-*"))


def remove_stale_stages_in(folder: Path) -> list[Path]:
    """Remove every stage in `folder` (of any name: atomic files, folders) left by a killed run; one
    directory listing, for a command to call once before it writes into a folder it updates in place."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return _remove_stale([Path(e.path) for e in entries if e.name.startswith(".")])


def remove_tree(path: Path) -> None:
    """Delete a folder (or file) so that it never stands half-deleted under its own name: renamed to a
    stage of kind "old" first (one rename), then removed; a kill midway leaves only that stage, which
    the next run removes."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    old = stage_path(path, "old")
    os.replace(path, old)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def check_new_output(out: Path, replace: bool = False, what: str = "output") -> None:
    """The one rule of what a command may write over: `out` must not exist (or be an empty folder)
    unless `replace` (--overwrite); else a one-line DatasetError."""
    out = Path(out)
    if replace or not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()):
            return
        raise DatasetError(f"{out}: already exists and is not empty; choose a new {what} folder or pass --overwrite")
    raise DatasetError(f"{out}: already exists; choose a new {what} or pass --overwrite to replace it")


@contextlib.contextmanager
def staged_output(out: Path, replace: bool = False) -> Iterator[Path]:
    """The one way a command writes a new output folder: a fresh hidden folder beside `out`
    (`.OUT.partial-PID-TOKEN`) to build into, renamed to `out` when the block succeeds and removed
    when it fails, so `out` is never half-written. Without `replace` (--overwrite), `out` must not
    exist or be an empty folder; with it, an existing `out` is swapped for the new one only at the end.
    Stages of killed runs (PID gone) are removed first, so a SIGKILL leaves `out` absent or complete
    and the next run cleans up after it."""
    out = Path(out)
    check_new_output(out, replace)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(out)
    stage = stage_path(out)
    stage.mkdir()
    try:
        yield stage
        if not (out.exists() or out.is_symlink()):
            os.replace(stage, out)
        else:  # empty, or replaced: moved aside first, so OUT is whole at every moment
            old = stage_path(out, "old")
            os.replace(out, old)
            try:
                os.replace(stage, out)
            except BaseException:
                os.replace(old, out)
                raise
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
