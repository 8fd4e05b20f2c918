"""The two helpers every layer shares for user-facing failures (no TensorFlow, no NumPy here).

* :func:`one_line`: an exception as one short line for a message.
* :func:`output_folder_problem`: why a path cannot be an output folder (optionally creating it).

Library functions raise their own typed errors built with these; the command layer
(:mod:`tfdeblur.commands`) prints them as one ``error: ...`` line with an exit code.
"""

from __future__ import annotations

import errno
import os
import tempfile

__all__ = ["one_line", "output_folder_problem"]


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a message: OS errors by their errno text ("permission
    denied", "symlink loop"), others by the first line of their message."""
    if isinstance(e, OSError) and e.errno is not None:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if e.errno == errno.ENOENT:
            return "no such file or directory"
        return os.strerror(e.errno).lower()
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def output_folder_problem(path, create: bool = True) -> str | None:
    """Why ``path`` cannot be an output folder, or None when it can.

    ``create=True`` makes the folder and proves it writable with a probe file. ``create=False``
    makes nothing: it checks the nearest existing ancestor (for a refusal before minutes of work
    whose results would be written only at the end).
    """
    path = os.path.abspath(path)
    if not create:
        p = path
        while not os.path.lexists(p) and os.path.dirname(p) != p:
            p = os.path.dirname(p)
        if not os.path.isdir(p):
            return f"{p} is not a folder"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"{p} is not writable"
        return None
    if os.path.lexists(path) and not os.path.isdir(path):
        return f"{path} exists and is not a folder"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"cannot create {path}: {one_line(e)}"
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfdeblur-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{path} is not writable: {one_line(e)}"
    return None
