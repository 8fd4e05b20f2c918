"""Writing a file so that a failure never leaves half of it: write a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import os

__all__ = ["atomic_path"]


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
