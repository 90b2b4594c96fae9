"""Flair-style character-LM features for NER (``ner train --set char_lm=FW_RUN[,BW_RUN]``).

    python -m tasks.char_generation train --data text.txt --output runs/lm_fw
    python -m tasks.char_generation train --data text.txt --output runs/lm_bw --set reverse=true
    python -m tasks.ner train --set char_lm=runs/lm_fw,runs/lm_bw

``char_lm`` names a forward ``char_generation`` run and optionally a backward one (trained with
``reverse=true``), both with the same character vocabulary, case handling and data mode. At
the start of training they are checked here (one clear error each: a missing path, a run of
another task, a direction or vocabulary mismatch, an unfinished run without a checkpoint; an
unfinished run WITH one is used with the runner's warning). Their weights are copied into
:class:`models.layers.char_lm_features.CharLMFeatures` layers of the tagger (frozen unless
``char_lm_trainable=true``) and their vocabulary into the NER run's assets
(:class:`CharLMInputs`), so the NER run directory and its export need the LM runs no longer
(only resuming an unfinished NER run reads them again, to rebuild its model).
The tagger reads the LMs' states at word boundaries; the sentence text is rebuilt in-graph from
the tokens (:func:`pipelines.char_lm.sentence_char_inputs`), so serving still takes raw
sentences.
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from models.layers.char_lm_features import CharLMFeatures  # registered: load_model finds it
from pipelines.char_lm import sentence_char_inputs
from pipelines.vocab import CharVocabulary
from tasks.runner import errors
from tasks.runner import run_dir as rd

DIRECTIONS = ("fw", "bw")
#: Characters of a token a char LM reads (a 1 MB token must not become 1 M LM steps).
MAX_TOKEN_CHARS = 64
#: Ids a char LM reads per sentence: its states are [batch, chars, units] in memory (a
#: CoNLL-2003 sentence has at most ~700 characters; longer ones lose their cut part's states).
MAX_SENTENCE_CHARS = 2000
_ASSET = "char_lm"


def parse(value: str) -> list[str]:
    """``"FW[,BW]"`` -> one or two run directories (an empty value: none)."""
    if not value or not value.strip():
        return []
    return [part.strip() for part in value.split(",")]


def check_config(checks, config) -> None:
    """Config rules without touching the file system (a trained NER run needs no LM runs)."""
    paths = parse(config.char_lm)
    checks.require("char_lm", len(paths) <= 2 and all(paths),
                   "must be FORWARD_RUN or FORWARD_RUN,BACKWARD_RUN (char_generation runs)")


def input_name(direction: str, kind: str) -> str:
    """The tagger's input names: ``char_lm_fw_ids`` / ``char_lm_fw_positions`` ..."""
    return f"char_lm_{direction}_{kind}"


# ---- the LM runs -----------------------------------------------------------------------------
@dataclasses.dataclass
class CharLMRun:
    path: str
    config: object
    preprocessor: object
    model: object


_LOADED: dict = {}  # (path, model mtime) -> CharLMRun: checked once per training start


def load_runs(value: str) -> list[CharLMRun]:
    """The checked char LM runs of ``char_lm``, forward first.

    Raises:
        errors.ConfigError: not one or two paths.
        errors.RunDirError: a path that does not exist, is not a char_generation run, has no
            checkpoint, reads the wrong direction, or two runs that read different characters.
    """
    paths = parse(value)
    if not 1 <= len(paths) <= 2 or not all(paths):
        raise errors.ConfigError(f"char_lm={value!r}: expected FORWARD_RUN or "
                                 f"FORWARD_RUN,BACKWARD_RUN (char_generation run directories)")
    runs = [_load_run(path, direction) for path, direction in zip(paths, DIRECTIONS)]
    if len(runs) == 2:
        (fw, bw) = runs
        ours, theirs = fw.preprocessor, bw.preprocessor
        if ours.mode != theirs.mode:
            raise errors.RunDirError(
                f"char_lm: {fw.path} reads {ours.mode} but {bw.path} reads {theirs.mode}; "
                f"train both LMs on the same data (mode)")
        if (ours.vocab.get_vocabulary() != theirs.vocab.get_vocabulary()
                or ours.vocab.lowercase != theirs.vocab.lowercase):
            raise errors.RunDirError(
                f"char_lm: {fw.path} and {bw.path} have different character vocabularies "
                f"({ours.vocab.vocabulary_size} vs {theirs.vocab.vocabulary_size} ids, "
                f"lowercase {ours.vocab.lowercase} vs {theirs.vocab.lowercase}); train both "
                f"on the same text with the same max_chars and lowercase")
    return runs


def _load_run(path: str, direction: str) -> CharLMRun:
    from tasks.char_generation import CharGenerationTask

    which = "forward" if direction == "fw" else "backward"
    if not os.path.exists(path):
        raise errors.RunDirError(f"char_lm: {path} does not exist (expected a {which} "
                                 f"char_generation run directory)")
    marker = rd.read_marker(path) or {}
    if marker.get("task") != "char_generation":
        what = f"a {marker['task']} run" if marker.get("task") else "not a run of this suite"
        raise errors.RunDirError(f"char_lm: {path} is {what}, not a char_generation run "
                                 f"(train one with python -m tasks.char_generation train)")
    model_file = rd.path(path, rd.MODEL)
    key = (os.path.realpath(path), os.path.getmtime(model_file)
           if os.path.exists(model_file) else None)
    if key not in _LOADED:
        try:  # prints the runner's warning for an unfinished run that has a checkpoint
            config, preprocessor, model = rd.load_run(CharGenerationTask(), path)
        except FileNotFoundError as err:
            raise errors.RunDirError(f"char_lm: {err}") from None
        _LOADED[key] = CharLMRun(path, config, preprocessor, model)
    run = _LOADED[key]
    if run.preprocessor.reverse != (direction == "bw"):
        if direction == "fw":
            raise errors.RunDirError(
                f"char_lm: {path} is a backward char LM (reverse=true), but the first run "
                f"must be the forward one: char_lm=FORWARD_RUN[,BACKWARD_RUN]")
        raise errors.RunDirError(
            f"char_lm: {path} is a forward char LM, but the second run must be a backward one "
            f"(python -m tasks.char_generation train --set reverse=true)")
    return dataclasses.replace(run, path=path)


# ---- preprocessing -----------------------------------------------------------------------
class CharLMInputs(tf.Module):
    """The char LMs' vocabulary and reading settings: tokens -> the tagger's char-LM inputs.

    A ``tf.Module`` so the serving module that holds it tracks (and exports) the vocabulary.

    Args:
        vocab: the LMs' ``CharVocabulary``.
        lines: the LMs were trained on lines (``[START]`` context) rather than continuous text.
        directions: ``("fw",)`` or ``("fw", "bw")``.
        max_token_chars: characters of a token the LMs read.
        max_chars: ids the LMs read per sentence.
    """

    def __init__(self, vocab: CharVocabulary, lines: bool, directions,
                 max_token_chars: int = MAX_TOKEN_CHARS, max_chars: int = MAX_SENTENCE_CHARS):
        super().__init__()
        self.vocab, self.lines = vocab, bool(lines)
        self.directions = tuple(directions)
        self.max_token_chars, self.max_chars = int(max_token_chars), int(max_chars)

    @classmethod
    def fit(cls, config) -> "CharLMInputs | None":
        """From the checked runs of ``config.char_lm`` (None when it is empty)."""
        if not parse(config.char_lm):
            return None
        runs = load_runs(config.char_lm)
        first = runs[0].preprocessor
        return cls(first.vocab, first.mode == "lines", DIRECTIONS[:len(runs)])

    def features(self, tokens) -> dict:
        """string tokens ``[..., T]`` ("" = padding) -> ``{char_lm_<dir>_ids int32 [..., L],
        char_lm_<dir>_positions int32 [..., T]}`` for each direction."""
        out = {}
        for direction in self.directions:
            ids, positions = sentence_char_inputs(
                tokens, self.vocab, lines=self.lines, reverse=direction == "bw",
                max_token_chars=self.max_token_chars, max_chars=self.max_chars)
            out[input_name(direction, "ids")] = ids
            out[input_name(direction, "positions")] = positions
        return out

    def save(self, assets_dir: str) -> None:
        self.vocab.save(assets_dir, f"{_ASSET}_chars")
        with open(os.path.join(assets_dir, f"{_ASSET}.json"), "w", encoding="utf-8") as f:
            json.dump({"lines": self.lines, "directions": list(self.directions),
                       "max_token_chars": self.max_token_chars, "max_chars": self.max_chars},
                      f)

    @classmethod
    def load(cls, assets_dir: str) -> "CharLMInputs | None":
        """What :meth:`save` wrote, or None (a run without char-LM features)."""
        path = os.path.join(assets_dir, f"{_ASSET}.json")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        return cls(CharVocabulary.load(assets_dir, f"{_ASSET}_chars"), meta["lines"],
                   meta["directions"], meta["max_token_chars"], meta["max_chars"])


# ---- the model -----------------------------------------------------------------------------
def feature_layers(config, inputs: CharLMInputs | None) -> dict | None:
    """``{input prefix: CharLMFeatures}`` with the LM runs' weights, for
    ``models.tagger.build_tagger_model(char_lm_layers=...)``; None without ``char_lm``."""
    from models.language_model import EMBEDDING, RNN

    if not parse(config.char_lm):
        return None
    runs = load_runs(config.char_lm)
    if inputs is None or inputs.vocab.get_vocabulary() != \
            runs[0].preprocessor.vocab.get_vocabulary():
        raise errors.RunDirError(
            f"char_lm: the character vocabulary of {runs[0].path} is not the one this NER "
            f"run's preprocessor saved (was the LM retrained?); start a new NER run")
    return {f"char_lm_{direction}": CharLMFeatures.from_layers(
        run.model.get_layer(EMBEDDING), run.model.get_layer(RNN),
        trainable=bool(config.char_lm_trainable), name=f"char_lm_{direction}")
        for direction, run in zip(DIRECTIONS, runs)}
