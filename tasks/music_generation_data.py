"""The music model's data sources, registered with ``pipelines.sources``.

Element structure: ``{"notes": float32 [None, 3]}`` (pitch, step, duration). Sources: ``bach``
(default; options ``voices``, ``unit``), a directory of MIDI files (``unit``).
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import file_stream, music
from pipelines.readers._common import RawSplits

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_music(source, *, seed, max_examples, options) -> RawSplits:
    _resolve("music_generation", source)
    if source == "bach":
        return music.music_splits(source, seed=seed, max_examples=max_examples, options=options)
    if not pathlib.Path(source).is_dir():
        raise DataError("expected 'bach' or a directory of MIDI files", source)
    # A MIDI folder: a file a record, parsed lazily (or kept from the index pass when small).
    return file_stream.midi_splits(source, seed=seed, options=options,
                                   max_examples=max_examples)


# ---- datasets

def _build_music(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"notes": {}}
    for split, pieces in _named(raw).items():
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"notes": _ragged(pieces, tf.float32, (3,))}).map(_dense)
        info["notes"][split] = sum(len(p) for p in pieces)
    pitches = np.concatenate([p[:, 0] for p in raw.train]) if raw.train else np.zeros(1)
    info["pitch_range"] = [int(pitches.min()), int(pitches.max())]
    info["vocab_size_estimate"] = len(np.unique(pitches))
    return out, info


# ---- evaluate --data FILE (from pipelines/readers/evaluation.py)

def _music(path: str, options: dict):
    # Every file (or the one file) whole, in order, parsed lazily like a training folder.
    return file_stream.midi_splits(path, seed=0, options=dict(options), evaluation=True)


DATA = sources.register(sources.TaskData(
    task="music_generation", named=("bach",), default="bach", raw=_raw_music,
    build=_build_music, read_whole=_music, whole_directories=True))
