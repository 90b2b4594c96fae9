"""One module per application plus the shared runner (tasks/runner).

Importing this package makes TensorFlow's start-up quiet (see :func:`quiet_tensorflow_import`):
``python -m tasks.<task> ...`` prints its own output only, without the Makefile's environment.
``--verbose`` on the command line, ``RECURRENT_SUITE_VERBOSE=1`` or an explicit
``TF_CPP_MIN_LOG_LEVEL`` of 0 or 1 keeps TensorFlow's messages.
"""

import os
import re
import sys
import tempfile

#: Lines TensorFlow's C++ runtime writes to stderr while it loads, whatever
#: TF_CPP_MIN_LOG_LEVEL says (absl logs everything before ``absl::InitializeLog``).
START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"cudart_stub|Could not find cuda drivers|failed call to cuInit|cuda_executor|"
    r"cpu_feature_guard|This TensorFlow binary is optimized|^To enable the following "
    r"instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|Could not find TensorRT")


def verbose_requested(argv=None, environ=None) -> bool:
    """True when the user asked for TensorFlow's own start-up messages."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    return ("--verbose" in argv or environ.get("RECURRENT_SUITE_VERBOSE", "") not in ("", "0")
            or environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() in ("0", "1"))


def quiet_tensorflow_import() -> None:
    """Imports TensorFlow with its stderr start-up chatter filtered out.

    The C++ runtime writes to file descriptor 2 directly, so Python-level redirection cannot
    catch it: fd 2 points at a temporary file while ``tensorflow`` loads and lists its
    devices (the CUDA probe), then every line that is not :data:`START_UP_NOISE` is written
    back to the real stderr (a genuine import error stays visible).
    """
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        return
    captured = tempfile.TemporaryFile()
    sys.stderr.flush()
    os.dup2(captured.fileno(), 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA driver probe (cuInit) logs here
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not START_UP_NOISE.search(line)]
        captured.close()
        if kept:
            print("\n".join(kept), file=sys.stderr)


# TF's C++ start-up chatter (CUDA probes, oneDNN notices) buries the progress output otherwise.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if not verbose_requested():
    # 3, not 2: after start-up TF still logs ERROR lines that are notices, not failures
    # ("oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back ..."); real
    # failures reach Python as exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    quiet_tensorflow_import()
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # Python-side absl warnings
