"""The seq2seq task's n-best requests and results (``translate_nbest``), and evaluation helpers.

Kept out of :mod:`tasks.seq2seq` (which stays the task's outline): the warm-up request and the
printing of the ``translate_nbest`` signature.
"""

from __future__ import annotations

import numpy as np

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
