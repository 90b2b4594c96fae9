"""The seq2seq task's n-best requests and results (``translate_nbest``), evaluation helpers
(sacreBLEU / chrF / exact-match metrics) and the attention figure.

Kept out of :mod:`tasks.seq2seq` (which stays the task's outline): the warm-up request and the
printing of the ``translate_nbest`` signature, and the held-out filter of :func:`held_out` (pairs
whose source is a training source, up to case and spacing, are not scored).
"""

from __future__ import annotations

import os

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


# ---- metrics and figures ----------------------------------------------------------------------
def sequence_metrics(hypotheses: list[str], references: list[str], bleu: bool) -> dict:
    """Exact match and character accuracy; with ``bleu`` also sacreBLEU's BLEU and chrF, each
    with its signature string (``bleu_signature``: tokenizer, smoothing, version...).

    Character accuracy: matching characters at the same position over the longer string's
    length, averaged over examples (1.0 = identical; a dropped character shifts the rest).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = [h == r for h, r in zip(hypotheses, references)]
    chars = [sum(a == b for a, b in zip(h, r)) / max(len(h), len(r), 1)
             for h, r in zip(hypotheses, references)]
    out = {"exact_match": float(np.mean(exact)) if exact else 0.0,
           "char_accuracy": float(np.mean(chars)) if chars else 0.0}
    if bleu:
        from sacrebleu.metrics import BLEU, CHRF

        for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
            out[name] = float(metric.corpus_score(hypotheses, [references]).score)
            out[f"{name}_signature"] = str(metric.get_signature())
        out["unk_outputs"] = sum("[UNK]" in h for h in hypotheses)
    return out


def attention_heatmap(outputs, index: int, path: str) -> str | None:
    """Draws example ``index`` of a serving output's ``attention`` (rows: output tokens)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no attention plot (pip install '.[demo]')")
        return None

    def array(key):  # tensors (serving outputs) or numpy arrays
        value = outputs[key]
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def tokens(key):
        return [t.decode("utf-8") for t in array(key)[index]]

    src = [t or "·" for t in tokens("source_tokens")]
    out = tokens("output_tokens")
    n_src = max(1, len([t for t in tokens("source_tokens") if t]))
    n_out = max(1, int(array("length")[index]))
    weights = array("attention")[index][:n_out, :n_src]
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * n_src + 2), max(3, 0.35 * n_out + 1.5)))
    ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(n_src), src[:n_src], rotation=90)
    ax.set_yticks(range(n_out), out[:n_out])
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
