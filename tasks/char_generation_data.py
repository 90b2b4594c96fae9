"""The character language model's data sources, registered with ``pipelines.sources``.

Element structure: ``{"text": string []}``. Sources: ``names`` (default, lines mode),
``shakespeare`` (continuous), a text file (option ``mode``).
"""

from __future__ import annotations

import tensorflow as tf

from pipelines import sources
from pipelines.readers import plain_text, text_stream
from pipelines.readers._common import RawSplits

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_char(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("char_generation", source) == "path":  # read lazily (files or a directory)
        return text_stream.char_file_splits(source, seed=seed, options=options,
                                            max_examples=max_examples)
    return plain_text.char_splits(source, seed=seed, options=options)


# ---- datasets

def _build_char(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"characters": {}}
    for split, texts in _named(raw).items():
        out[split] = tf.data.Dataset.from_tensor_slices({"text": _strings(texts)})
        info["characters"][split] = sum(len(t) for t in texts)
    info["vocab_size_estimate"] = len(set("".join(raw.train)))
    return out, info


# ---- evaluate --data FILE (from pipelines/readers/evaluation.py)

def _char(path: str, options: dict):
    # The whole file, in order, streamed like a training file.
    return text_stream.char_file_splits(path, seed=0, options=dict(options), evaluation=True)


DATA = sources.register(sources.TaskData(
    task="char_generation", named=("names", "shakespeare"), default="names", raw=_raw_char,
    build=_build_char, read_whole=_char))
