"""The seq2seq task's n-best requests and results (``translate_nbest``), and evaluation helpers.

Kept out of :mod:`tasks.seq2seq` (which stays the task's outline): the warm-up request and the
printing of the ``translate_nbest`` signature, and the held-out filter of :func:`held_out` (pairs
whose source is a training source, up to case and spacing, are not scored).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: The n-best warm-up request's ranking settings (GNMT alpha 0.6, beta 0.2, as in the paper).
NBEST_WARMUP = {"length_penalty": 0.6, "average": False, "coverage_penalty": 0.2}


def nbest_warmup(inputs: dict) -> dict:
    """``translate_nbest``'s warm-up inputs: ``inputs``' texts with :data:`NBEST_WARMUP`."""
    return {"text": inputs["text"],
            "length_penalty": np.float32(NBEST_WARMUP["length_penalty"]),
            "average": np.bool_(NBEST_WARMUP["average"]),
            "coverage_penalty": np.float32(NBEST_WARMUP["coverage_penalty"])}


def _array(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def show_nbest(request, inputs, outputs) -> list[dict]:
    """One result per text: ``{"text", "translations": [...], "scores": [...], "log_probs":
    [...]}`` best first; printed one hypothesis a line unless ``request.json``."""
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t)
             for t in _array(inputs["text"]).tolist()]
    translations, scores = _array(outputs["translations"]), _array(outputs["scores"])
    log_probs = _array(outputs["log_probs"])
    results = []
    for i, text in enumerate(texts):
        result = {"text": text,
                  "translations": [t.decode("utf-8") for t in translations[i].tolist()],
                  "scores": [float(x) for x in scores[i]],
                  "log_probs": [float(x) for x in log_probs[i]]}
        results.append(result)
        if not request.json:
            print(text)
            for rank, (hyp, score) in enumerate(zip(result["translations"], result["scores"])):
                print(f"  {rank + 1}. {hyp}   (score {score:.3f})")
    return results


# ---- held-out evaluation ----------------------------------------------------------------------
_TRAIN_SOURCES: dict = {}


def source_key(text) -> str:
    """What makes two sources "the same sentence": case-folded, whitespace collapsed."""
    text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
    return " ".join(text.casefold().split())


def train_sources(task, config) -> frozenset:
    """The :func:`source_key` of every training source of ``config``'s data (cached)."""
    key = (config.data, config.lowercase, config.max_length, config.reverse, config.seed,
           config.max_examples)
    if key not in _TRAIN_SOURCES:
        splits = task.load_splits(config)
        _TRAIN_SOURCES[key] = frozenset(
            source_key(s) for s in splits.train.map(lambda e: e["source"]).as_numpy_iterator())
    return _TRAIN_SOURCES[key]


def held_out(task, config, split):
    """``split`` without the pairs whose source is (up to case and spacing) a training source.

    The pairs data is already split by source sentence; this also catches sentences that differ
    from a training one only in case or spacing, and the pairs of an ``evaluate --data FILE``.

    Returns:
        ``(split, removed)``: a Dataset of ``{"source", "target"}`` and how many pairs were
        dropped; ``(split, None)`` unchanged for generated dates (no file to leak from).
    """
    if (config.data or "dates") == "dates":
        return split, None
    seen = train_sources(task, config)
    pairs = list(split.as_numpy_iterator())
    kept = [p for p in pairs if source_key(p["source"]) not in seen]
    data = {"source": tf.constant([p["source"] for p in kept], tf.string),
            "target": tf.constant([p["target"] for p in kept], tf.string)}
    return tf.data.Dataset.from_tensor_slices(data), len(pairs) - len(kept)
