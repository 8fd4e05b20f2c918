"""Keep TensorFlow's and LiteRT's native log lines off the console unless asked for (``-v``).

TensorFlow 2.21 logs through absl from C++: the lines written before ``absl::InitializeLog()``
("Could not find cuda drivers ...") ignore ``TF_CPP_MIN_LOG_LEVEL``, and LiteRT prints "INFO:
Created TensorFlow Lite XNNPACK delegate" whatever the level. Those happen at two moments only
(importing TensorFlow, building an interpreter), so the process's stderr file descriptor is
pointed at a temporary file around them and the capture is replayed only when they fail.
Python-level output (warnings, the progress bar, ``error:`` lines) is untouched.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

__all__ = ["configure", "native_stderr_silenced", "import_tensorflow", "litert_interpreter"]

_verbose = False


def configure(verbose: bool = False) -> None:
    """Before TensorFlow is imported: ``verbose`` shows every TensorFlow log line; otherwise only
    errors raised to Python (C++ levels below FATAL, absl and tf Python warnings are dropped).
    An explicit ``TF_CPP_MIN_LOG_LEVEL`` in the environment is kept unless ``verbose``."""
    global _verbose
    _verbose = bool(verbose)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    import tfdeblur

    if tfdeblur._TF_LOG_LEVEL_IS_OURS:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import logging
    import warnings

    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "tf_keras", "absl", "google.protobuf"):
        warnings.filterwarnings("ignore", module=module)


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to a temporary file for the block (replayed if the block raises)."""
    if _verbose:
        yield
        return
    fd = 2  # where native code writes, whatever sys.stderr is now
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def import_tensorflow():
    """``import tensorflow`` without its start-up lines; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with native_stderr_silenced():
        import tensorflow

    return tensorflow


def litert_interpreter(model_path=None, model_content=None, num_threads=None, allocate: bool = True):
    """A LiteRT (``ai-edge-litert``) interpreter for a ``.tflite`` file or flatbuffer, built quietly."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced():
        it = Interpreter(model_path=None if model_path is None else os.fspath(model_path),
                         model_content=model_content, num_threads=num_threads)
        if allocate:
            it.allocate_tensors()
    return it
