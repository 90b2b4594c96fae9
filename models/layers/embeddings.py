"""Pretrained word vectors (GloVe / word2vec text format) -> an embedding matrix.

Plain Python + NumPy (runs once before model building). The file is streamed and only the
vectors of the vocabulary are kept, so a multi-GB file needs memory for the vocabulary only.
"""

from __future__ import annotations

import io
import os

import numpy as np

# Reserved tokens of pipelines.vocab (pad "", OOV "[UNK]", "[START]", "[END]"): never looked up
# and not counted in the coverage.
RESERVED_TOKENS = ("", "[UNK]", "[START]", "[END]")


def _open(path: str):
    if path.endswith(".gz"):
        import gzip

        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def load_word_vectors(path: str, vocabulary, *, lowercase_fallback: bool = True,
                      seed: int = 0, reserved=RESERVED_TOKENS):
    """Builds a ``[len(vocabulary), dim]`` float32 matrix from a GloVe or word2vec text file.

    Lookup per vocabulary token: the exact token, then (``lowercase_fallback``) its lowercase
    form, the usual fix for cased vocabularies against lowercased GloVe. Missing tokens get
    N(0, s) rows with s the standard deviation of the found vectors (so they are on the same
    scale); the padding row (id 0) is zero.

    Args:
        path: text file, optionally ``.gz``; ``word v1 .. vD`` per line. A word2vec
            ``"count dim"`` header line is detected and skipped. Words may contain spaces
            (GloVe 840B): the last ``dim`` fields are the vector.
        vocabulary: tokens, index = id (``TokenVocabulary.get_vocabulary()``).
        lowercase_fallback: also try ``token.lower()``.
        seed: for the random rows of missing tokens.
        reserved: tokens never looked up nor counted.

    Returns:
        ``(matrix, report)``; report: ``dim``, ``vocabulary`` (counted tokens), ``exact``,
        ``lowercase``, ``missing``, ``coverage`` (fraction found), ``examples_missing`` (<= 10).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: malformed line (names the line number) or no vector dimension found.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"word vector file not found: {path}")
    vocabulary = [str(t) for t in vocabulary]
    wanted = set(vocabulary)
    if lowercase_fallback:
        wanted |= {t.lower() for t in vocabulary}
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n\r ").split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # word2vec header "count dim"
                continue
            if len(parts) < 2:
                continue  # blank line
            if dim is None:
                dim = len(parts) - 1
            if len(parts) < dim + 1:
                raise ValueError(
                    f"{path}:{lineno}: expected a word and {dim} numbers, got {len(parts)} "
                    "fields")
            word = " ".join(parts[:-dim])
            if word in wanted and word not in vectors:  # first occurrence wins
                try:
                    vectors[word] = np.asarray(parts[-dim:], dtype="float32")
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: non-numeric vector for {word!r}") from None
    if dim is None:
        raise ValueError(f"{path}: no word vectors found")
    found = np.stack(list(vectors.values())) if vectors else np.zeros((0, dim), "float32")
    scale = float(found.std()) if found.size else 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale or 0.1, size=(len(vocabulary), dim)).astype("float32")
    exact = lower = 0
    missing = []
    for i, token in enumerate(vocabulary):
        if token in reserved:
            continue
        if token in vectors:
            matrix[i], exact = vectors[token], exact + 1
        elif lowercase_fallback and token.lower() in vectors:
            matrix[i], lower = vectors[token.lower()], lower + 1
        else:
            missing.append(token)
    if vocabulary and vocabulary[0] == "":
        matrix[0] = 0.0  # padding id
    counted = exact + lower + len(missing)
    report = {
        "path": path, "dim": dim, "vocabulary": counted, "exact": exact, "lowercase": lower,
        "missing": len(missing), "coverage": (exact + lower) / counted if counted else 0.0,
        "examples_missing": missing[:10],
    }
    return matrix, report


def format_coverage(report: dict) -> str:
    """One readable line for a :func:`load_word_vectors` report."""
    return (f"word vectors {os.path.basename(report['path'])} (dim {report['dim']}): "
            f"{report['coverage']:.1%} of {report['vocabulary']} tokens covered "
            f"({report['exact']} exact, {report['lowercase']} lowercase), "
            f"{report['missing']} missing, e.g. {report['examples_missing'][:5]}")
