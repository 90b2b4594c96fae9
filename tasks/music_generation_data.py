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
from pipelines.readers import music
from pipelines.readers._common import RawSplits, check_options

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_music(source, *, seed, max_examples, options) -> RawSplits:
    _resolve("music_generation", source)
    return music.music_splits(source, seed=seed, max_examples=max_examples, options=options)


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

def _music(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("unit", "min_notes"), path)
    unit = options.get("unit", "seconds")
    files = [pathlib.Path(path)]
    if files[0].is_dir():
        files = sorted(p for p in files[0].rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    tracks = [track for f in files
              for track in music.read_midi(f, unit=unit, min_notes=options.get("min_notes", 1))]
    if not tracks:
        raise DataError("no non-drum track with notes", path)
    return tracks, {"unit": unit, "files": {"test": [str(f) for f in files]}}


DATA = sources.register(sources.TaskData(
    task="music_generation", named=("bach",), default="bach", raw=_raw_music,
    build=_build_music, read_whole=_music, whole_directories=True))
