"""One module per application plus the shared runner (tasks/runner)."""

import os

# TF's C++ start-up chatter (CUDA probes, oneDNN notices) buries the progress output otherwise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
