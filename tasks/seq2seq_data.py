"""The seq2seq task's data sources, registered with ``pipelines.sources``.

Element structure: ``{"source": string [], "target": string []}``. Sources: ``dates``
(default; options ``locales``, ``num_examples``), ``pairs:PATH`` or a TSV path (options
``lowercase``, ``max_length``, ``reverse``).
"""

from __future__ import annotations

import tensorflow as tf

from pipelines import sources
from pipelines.readers import dates, pairs
from pipelines.readers._common import RawSplits

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_seq2seq(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("seq2seq", source) == "named":
        return dates.dates_splits(seed=seed, max_examples=max_examples, options=options)
    # A pairs file: indexed once, pairs read lazily (or, when small, into memory once).
    return pairs.pairs_file_splits(source, seed=seed, options=options,
                                   max_examples=max_examples)


# ---- datasets

def _build_seq2seq(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"tokens": {}, "characters": {}}
    for split, examples in _named(raw).items():
        src, tgt = [s for s, _ in examples], [t for _, t in examples]
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"source": _strings(src), "target": _strings(tgt)})
        info["tokens"][split] = sum(len(s.split()) + len(t.split()) for s, t in examples)
        info["characters"][split] = sum(len(s) + len(t) for s, t in examples)
    info["source_vocab_size_estimate"] = len({w for s, _ in raw.train for w in s.split()})
    info["target_vocab_size_estimate"] = len({w for _, t in raw.train for w in t.split()})
    info["source_chars"] = len({c for s, _ in raw.train for c in s})
    info["target_chars"] = len({c for _, t in raw.train for c in t})
    return out, info


# ---- evaluate --data FILE (from pipelines/readers/evaluation.py)

def _seq2seq(path: str, options: dict):
    # The whole file, in order, streamed like a training file.
    return pairs.pairs_file_splits(path, seed=0, options=dict(options), evaluation=True)


DATA = sources.register(sources.TaskData(
    task="seq2seq", named=("dates",), default="dates", raw=_raw_seq2seq,
    build=_build_seq2seq, read_whole=_seq2seq, path_prefix="pairs:"))
