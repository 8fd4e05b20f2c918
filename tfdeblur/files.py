"""Writing a file so that a failure never leaves half of it: write a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import json
import os

__all__ = ["atomic_path", "write_json"]


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary sibling of ``path`` to write; when the block succeeds it replaces
    ``path`` in one rename, and it is removed whatever happens. ``suffix`` ends the temporary
    name (e.g. ``".keras"``, for writers that go by the extension)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, obj, indent: int = 1, **dump_kwargs) -> str:
    """Write ``obj`` as JSON to ``path`` (its folder made if needed) in one rename, so a failure
    never leaves half a file; ``dump_kwargs`` go to :func:`json.dump` (e.g. ``default=str``).
    Returns ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, **dump_kwargs)
    return path
