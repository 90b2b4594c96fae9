"""Note sequences ``[n, 3]`` = (pitch, step, duration) from MIDI files and music21 chorales.

``step`` is the onset minus the previous note's onset (0 for the first note and for notes
that sound together), ``duration`` the note length; both in seconds or in quarter-note beats.
Notes are sorted by (onset, pitch) so simultaneous notes have a fixed order.
"""

from __future__ import annotations

import os
import pathlib
import re
import warnings
from typing import Sequence

import numpy as np

from pipelines.errors import DataError
from pipelines.readers._common import RawSplits, check_options, grouped_split, seeded_split

UNITS = ("seconds", "beats")
VOICES = ("soprano", "all")
_SOPRANO = re.compile(r"sop|^s$|cantus|discant", re.IGNORECASE)


def notes_from_onsets(pitch: Sequence[float], onset: Sequence[float],
                      duration: Sequence[float]) -> np.ndarray:
    """``[n, 3]`` float32 (pitch, step, duration) from absolute onsets, sorted by onset."""
    pitch, onset, duration = (np.asarray(a, np.float64) for a in (pitch, onset, duration))
    if pitch.size == 0:
        return np.zeros((0, 3), np.float32)
    order = np.lexsort((pitch, onset))
    onset = onset[order]
    step = np.diff(onset, prepend=onset[0])
    return np.stack([pitch[order], step, duration[order]], axis=1).astype(np.float32)


def read_midi(path: str | os.PathLike, *, unit: str = "seconds",
              min_notes: int = 1) -> list[np.ndarray]:
    """One ``[n, 3]`` array per non-drum instrument track of a MIDI file.

    Args:
        path: A ``.mid``/``.midi`` file.
        unit: ``"seconds"`` or ``"beats"`` (quarter notes, from the file's tick resolution,
            so tempo changes do not distort it).
        min_notes: Tracks with fewer notes are dropped.

    Raises:
        DataError: The file cannot be parsed as MIDI (naming it).
    """
    import pretty_midi  # heavy import, only needed here

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    try:
        midi = pretty_midi.PrettyMIDI(os.fspath(path))
    except Exception as err:  # pretty_midi/mido raise many types for a corrupt file
        raise DataError(f"cannot parse MIDI ({type(err).__name__}: {err})", path) from None
    out = []
    for instrument in midi.instruments:
        if instrument.is_drum or len(instrument.notes) < min_notes:
            continue
        notes = instrument.notes
        start = np.array([n.start for n in notes])
        end = np.array([n.end for n in notes])
        if unit == "beats":
            ticks = midi.resolution
            start_b = np.array([midi.time_to_tick(t) for t in start]) / ticks
            end_b = np.array([midi.time_to_tick(t) for t in end]) / ticks
            start, end = start_b, end_b
        out.append(notes_from_onsets([n.pitch for n in notes], start, end - start))
    return out


def write_midi(notes: np.ndarray, path: str | os.PathLike, *, unit: str = "seconds",
               tempo: float = 120.0, program: int = 0, velocity: int = 100) -> str:
    """Writes ``[n, 3]`` (pitch, step, duration) notes as a one-track MIDI file.

    Args:
        notes: Array [n, 3]; pitches are rounded and clipped to 0-127.
        path: Output file.
        unit: Unit of step/duration: ``"seconds"`` or ``"beats"`` (converted with ``tempo``).
        tempo: Beats per minute, written to the file.
        program: General MIDI program (0 = acoustic grand piano).
        velocity: Note velocity.

    Returns:
        The path written.
    """
    import pretty_midi

    notes = np.asarray(notes, np.float64)
    if notes.ndim != 2 or notes.shape[1] != 3:
        raise ValueError(f"notes must have shape [n, 3], got {notes.shape}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    scale = 60.0 / tempo if unit == "beats" else 1.0
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    instrument = pretty_midi.Instrument(program=program)
    onset = 0.0
    for pitch, step, duration in notes:
        onset += max(0.0, step) * scale
        # A zero/negative duration from a model would make an invisible note; keep a tick.
        end = onset + max(duration * scale, 1e-3)
        instrument.notes.append(pretty_midi.Note(
            velocity=velocity, pitch=int(np.clip(round(pitch), 0, 127)), start=onset, end=end))
    midi.instruments.append(instrument)
    midi.write(os.fspath(path))
    return os.fspath(path)


def cache_dir() -> pathlib.Path:
    """``$RECURRENT_SUITE_CACHE`` or ``~/.cache/recurrent-suite``."""
    root = os.environ.get("RECURRENT_SUITE_CACHE") or os.path.join("~", ".cache",
                                                                   "recurrent-suite")
    return pathlib.Path(root).expanduser()


def list_chorales() -> list[str]:
    """The 371 four-part chorales of the music21 corpus (``"bach/bwv269"``, ...), in order."""
    from music21.corpus import chorales

    return [str(name) for name in chorales.Iterator(returnType="filename")]


def _chorale_notes(name: str, voices: str) -> np.ndarray:
    from music21 import corpus

    score = corpus.parse(name)
    parts = list(score.parts)
    if voices == "soprano":
        named = [p for p in parts if _SOPRANO.search(str(p.partName or p.id or ""))]
        # Some chorales put an instrument (horn) first; fall back to the top part only
        # when no part is named soprano.
        parts = named[:1] or parts[:1]
    pitch, onset, duration = [], [], []
    for part in parts:
        for element in part.stripTies().flatten().notes:
            length = float(element.quarterLength)
            if length <= 0:  # grace notes take no time; a 0 duration would confuse a model
                continue
            for p in element.pitches:
                pitch.append(p.midi)
                onset.append(float(element.offset))
                duration.append(length)
    if not pitch:
        raise DataError(f"no notes in the {voices} part(s)", name)
    return notes_from_onsets(pitch, onset, duration)


def read_music21_chorales(names: Sequence[str] | None = None, *, voices: str = "soprano",
                          limit: int = 0, use_cache: bool = True) -> list[np.ndarray]:
    """Note arrays (unit: quarter-note beats) of music21's Bach chorales.

    Parsing a chorale takes ~0.3 s, so each array is cached as ``.npy`` under
    ``cache_dir()/music21-<version>/<voices>/``; the music21 version is in the key so an
    upgrade that changes the corpus or the parser re-extracts.

    Args:
        names: Corpus names (see :func:`list_chorales`); None = all 371.
        voices: ``"soprano"`` (the melody) or ``"all"`` (the four parts merged into one
            polyphonic sequence; simultaneous notes have step 0).
        limit: Read at most this many (0 = all).
        use_cache: Read/write the cache.

    Returns:
        One ``[n, 3]`` float32 array per chorale, in the order of ``names``.
    """
    import music21

    if voices not in VOICES:
        raise ValueError(f"voices must be one of {VOICES}, got {voices!r}")
    names = list_chorales() if names is None else list(names)
    if limit:
        names = names[:limit]
    folder = cache_dir() / f"music21-{music21.__version__}" / voices
    out = []
    for name in names:
        cached = folder / (re.sub(r"[^A-Za-z0-9.]+", "_", name) + ".npy")
        if use_cache and cached.exists():
            out.append(np.load(cached))
            continue
        notes = _chorale_notes(name, voices)
        if use_cache:
            folder.mkdir(parents=True, exist_ok=True)
            # Write then rename: several processes may fill the cache at once.
            tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, notes)
            os.replace(tmp, cached)
        out.append(notes)
    return out


def music_splits(source: str, *, seed: int, max_examples: int, options: dict) -> RawSplits:
    """Pieces for music generation from ``bach`` or a directory of MIDI files.

    * ``bach``: the 371 chorales, seeded 80/10/10 by piece; only the pieces that survive
      the ``max_examples`` cap are parsed. Unit is beats; ``unit="seconds"`` converts at
      option ``tempo`` (default 90 quarter notes per minute).
    * a directory: every ``*.mid``/``*.midi`` (sorted), one example per non-drum track;
      split 80/10/10 by file (seeded) so tracks of one piece stay together.
    """
    if source == "bach":
        check_options(options, ("voices", "unit", "tempo"), source)
        voices = options.get("voices", "soprano")
        unit = options.get("unit", "beats")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        train, validation, test = seeded_split(list_chorales(), seed)
        if max_examples:
            cap = max(1, max_examples // 4)
            train, validation, test = train[:max_examples], validation[:cap], test[:cap]
        pieces = {s: read_music21_chorales(names, voices=voices)
                  for s, names in (("train", train), ("validation", validation), ("test", test))}
        info = {"source": source, "unit": unit, "voices": voices,
                "split_policy": "371 chorales, seeded 80/10/10 by piece",
                "pieces": {"train": train, "validation": validation, "test": test}}
        if unit == "seconds":
            scale = 60.0 / float(options.get("tempo", 90.0))
            for arrays in pieces.values():
                for a in arrays:
                    a[:, 1:] *= scale
            info["tempo"] = float(options.get("tempo", 90.0))
        return RawSplits(pieces["train"], pieces["validation"], pieces["test"], info)
    check_options(options, ("unit", "min_notes"), source)
    directory = pathlib.Path(source)
    if not directory.is_dir():
        raise DataError("expected 'bach' or a directory of MIDI files", source)
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise DataError("no .mid/.midi files", directory)
    unit = options.get("unit", "seconds")
    tracks = []
    for path in files:
        arrays = read_midi(path, unit=unit, min_notes=options.get("min_notes", 1))
        if not arrays:
            warnings.warn(f"{path}: no non-drum track with notes; skipped", stacklevel=2)
        tracks.extend((str(path), a) for a in arrays)
    train, validation, test = grouped_split(tracks, lambda t: t[0], seed, source=str(source))
    return RawSplits(
        [a for _, a in train], [a for _, a in validation],
        None if test is None else [a for _, a in test],
        {"source": str(source), "unit": unit,
         "split_policy": "MIDI files, seeded 80/10/10 by file (tracks stay together)",
         "files": {"train": sorted({p for p, _ in train}),
                   "validation": sorted({p for p, _ in validation}),
                   "test": sorted({p for p, _ in test or []})}})
