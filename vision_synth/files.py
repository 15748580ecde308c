"""Writing files so that readers never see half of one: atomic files, JSON, staged output folders.

Every room writes through these three: a file appears whole or not at all (`write_atomic`,
`write_json`), and an output folder appears complete or not at all (`staged_output`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from vision_synth.errors import DatasetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files owner-only


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file to write `path` through: a temp file beside it, renamed to `path` when the block
    succeeds (readers see the old file or the whole new one) and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            os.fchmod(f.fileno(), FILE_MODE)
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` (str as UTF-8) to `path` atomically (see `atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """JSON as every file of ours holds it: compact (COCO files, shard lines), or indented for files
    people read (reports, state), with non-ASCII characters kept as they are."""
    if indent is None:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """`obj` as JSON (see `dumps_json`), written atomically."""
    write_atomic(path, dumps_json(obj, indent))


@contextlib.contextmanager
def staged_output(out: Path, replace: bool = False) -> Iterator[Path]:
    """A fresh hidden folder beside `out` to build into, renamed to `out` when the block succeeds and
    removed when it fails, so `out` is never half-written. Without `replace`, `out` must not exist
    or be an empty folder; with it, an existing `out` is swapped for the new one only at the end."""
    out = Path(out)
    if not replace and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not empty; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        yield stage
        old = None
        if out.exists():  # empty, or replaced: moved aside first, so OUT is whole at every moment
            old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
