"""Vocabularies fitted on the training split, saved as plain text, usable in tf.data and serving.

Reserved ids (all but :class:`LabelLookup`): 0 = padding/mask (token "", masked by
``Embedding(mask_zero=True)``), 1 = out of vocabulary ("[UNK]"), and with ``add_start_end=True``
2 = "[START]", 3 = "[END]". Learned tokens follow, most frequent first (ties: reverse token order,
as Keras sorts). ``max_tokens`` / ``max_chars`` cap the total size, reserved ids INCLUDED.

``save(directory, name)`` writes ``<name>.vocab.txt`` (UTF-8, one token a line, line i = id i;
backslash and line breaks escaped as ``\\\\``, ``\\n``, ``\\uXXXX``) and ``<name>.json`` (settings,
reserved ids, size); ``load`` rebuilds identical tables: same ids, same outputs.

The classes are ``tf.Module`` s around Keras ``TextVectorization`` / ``StringLookup`` (TF lookup
tables): they work eagerly, in ``Dataset.map`` and in an exported ``tf.function`` (a task's
trackable preprocessor holds them, so the serving module that holds it saves their tables).
"""

from __future__ import annotations

import json
import os
import re

import keras
import tensorflow as tf

PAD_ID, OOV_ID, START_ID, END_ID = 0, 1, 2, 3
PAD_TOKEN, OOV_TOKEN, START_TOKEN, END_TOKEN = "", "[UNK]", "[START]", "[END]"
_FORMAT = 1
_STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
# Characters str.splitlines() breaks on: escaped so any line-based reader sees one token a line.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def tokenize(text: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
    """Splits text into words and punctuation, in-graph (same result in tf.data and serving).

    Separators and control characters (``\\p{Z}``, ``\\p{Cc}``) are dropped; a token is a run of
    letters, numbers and combining marks, any other character (punctuation, symbols, "_") is a
    token by itself; case is kept: ``"It's 3.5!"`` -> ``["It", "'", "s", "3", ".", "5", "!"]``.

    Args:
        text: string ``[]`` (-> string ``[tokens]``) or ``[batch]`` (-> ragged ``[batch, None]``).
    """
    text = tf.strings.regex_replace(text, r"[\p{Z}\p{Cc}]+", " ")
    text = tf.strings.regex_replace(text, r"([^\p{L}\p{N}\p{M}\p{Z}\p{Cc}])", r" \1 ")
    return tf.strings.split(text)


def _text(text):
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank not in (0, 1):
        raise ValueError(f"expected text of shape [] or [batch], got shape {text.shape}")
    return text


_ESCAPES = {ord("\\"): "\\\\", ord("\n"): "\\n",
            **{ord(c): f"\\u{ord(c):04x}" for c in _LINE_BREAKS[1:]}}


def _unescape(line: str) -> str:
    return re.sub(r"\\(\\|n|u[0-9a-f]{4})", lambda m: {"\\": "\\", "n": "\n"}.get(m[1])
                  or chr(int(m[1][1:], 16)), line)


def _optional_positive(name, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name} must be None or a positive int, got {value!r}")


def _checked_ids(ids, size, owner):
    """Casts ids to int64 and makes out-of-range ids raise instead of decoding to "[UNK]"."""
    ids = tf.convert_to_tensor(ids)
    if not ids.dtype.is_integer:
        raise TypeError(f"{owner}.decode expects integer ids, got {ids.dtype.name}")
    ids = tf.cast(ids, tf.int64)
    with tf.control_dependencies([
            tf.debugging.assert_non_negative(ids, message=f"{owner}.decode: negative id"),
            tf.debugging.assert_less(ids, tf.constant(size, tf.int64),
                                     message=f"{owner}.decode: id >= vocabulary size {size}")]):
        return tf.identity(ids)


def _write_files(obj, directory, name, vocab, config, reserved):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t.translate(_ESCAPES) + "\n" for t in vocab))
    meta = {"class": type(obj).__name__, "format": _FORMAT, "config": config,
            "vocabulary_size": len(vocab), "reserved": reserved}
    with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)


def _string_batches(data, per_element):
    """``data`` (Dataset or list) -> Dataset of 1-D string batches (``per_element`` first)."""
    if not isinstance(data, tf.data.Dataset):
        if not isinstance(data, (list, tuple)):
            raise TypeError(f"adapt expects a tf.data.Dataset or a list, got {type(data).__name__}")
        data = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(data, dtype=tf.string))
    spec = data.element_spec
    if not isinstance(spec, (tf.TensorSpec, tf.RaggedTensorSpec)) or spec.dtype != tf.string:
        raise TypeError(f"adapt expects a dataset of strings or token lists, got element_spec "
                        f"{spec}; map it to the text field first, e.g. ds.map(lambda e: e['text'])")

    def flat(x):
        x = per_element(x)
        return x.flat_values if isinstance(x, tf.RaggedTensor) else tf.reshape(x, [-1])
    # ragged_batch gives a dense batch when every element has the same static shape
    return data.map(flat).ragged_batch(256).map(flat)


class _Vocabulary(tf.Module):
    """Shared code: reserved ids, caps, file format, in-graph decoding."""

    _default_name, _size_arg, _separator = "vocab", "max_tokens", None

    def __init__(self, cap, add_start_end, lowercase=False):
        super().__init__()
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                                or cap < 3 + 2 * add_start_end):
            raise ValueError(f"{self._size_arg} must be None or an int >= "
                             f"{3 + 2 * add_start_end} (reserved ids + 1), got {cap!r}")
        self._cap, self.add_start_end, self.lowercase = cap, bool(add_start_end), bool(lowercase)
        self._lookup = None

    def _config(self) -> dict:
        return {self._size_arg: self._cap, "lowercase": self.lowercase,
                "add_start_end": self.add_start_end}

    def _lower(self, strings):
        return tf.strings.lower(strings, encoding="utf-8") if self.lowercase else strings

    def _make_layers(self, vocabulary: list[str]):  # string -> id, vocabulary without pad/OOV
        self._lookup = keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PAD_TOKEN,
                                                 oov_token=OOV_TOKEN)

    def _units(self, strings):  # strings -> what is looked up (tokens; characters for chars)
        return self._lower(strings)

    def _counter(self):  # a layer whose adapt() counts the units
        return keras.layers.StringLookup(mask_token=PAD_TOKEN, oov_token=OOV_TOKEN)

    def adapt(self, data):
        """Learns from a Dataset (or list) of strings or token lists: the TRAINING split only."""
        counter = self._counter()
        counter.adapt(_string_batches(data, self._units))
        self._set_learned(counter.get_vocabulary()[2:])
        return self

    def decode(self, ids, separator: str | None = None):
        """int ids ``[..., time]`` -> token strings of the same shape when ``separator`` is None,
        else ``[...]`` strings joined by it, with pad/start/end dropped and nothing after "[END]".
        Default separator: " " for words, "" for characters, None for tokens."""
        separator = self._separator if separator is None else separator
        return self.tokens(ids) if separator is None else self._join(ids, separator)

    @property
    def reserved_tokens(self) -> list[str]:
        return [PAD_TOKEN, OOV_TOKEN] + ([START_TOKEN, END_TOKEN] if self.add_start_end else [])

    start_id = property(lambda self: START_ID if self.add_start_end else None)
    end_id = property(lambda self: END_ID if self.add_start_end else None)

    vocabulary_size = property(lambda self: self._check_built()._size, doc="int, reserved incl.")

    def get_vocabulary(self) -> list[str]:
        """All tokens, index = id (reserved tokens first)."""
        return [str(t) for t in self._check_built()._lookup.get_vocabulary()]

    def _set_learned(self, learned: list[str]):
        reserved = set(self.reserved_tokens)
        learned = [t for t in learned if t not in reserved]
        if self._cap is not None:
            learned = learned[: self._cap - len(self.reserved_tokens)]
        vocabulary = self.reserved_tokens[2:] + learned
        self._make_layers(vocabulary)
        self._size = len(self.reserved_tokens) + len(learned)  # a python int: usable in graphs
        self._inverse = keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PAD_TOKEN,
                                                  oov_token=OOV_TOKEN, invert=True)

    def _check_built(self):
        if self._lookup is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary yet: call adapt() "
                               "on the training split or load() a saved one")
        return self

    def save(self, directory: str, name: str | None = None) -> None:
        """Writes ``<name>.vocab.txt`` and ``<name>.json`` into ``directory`` (created)."""
        _write_files(self, directory, name or self._default_name, self.get_vocabulary(),
                     self._config(), {t or "<pad>": i for i, t in enumerate(self.reserved_tokens)})

    @classmethod
    def load(cls, directory: str, name: str | None = None):
        """Rebuilds a vocabulary written by :meth:`save` (same ids, same outputs)."""
        meta, vocab = _read_files(directory, name or cls._default_name, cls.__name__)
        obj = cls(**meta["config"])
        head, learned = vocab[:len(obj.reserved_tokens)], vocab[len(obj.reserved_tokens):]
        if head != obj.reserved_tokens:
            raise ValueError(f"{directory}: reserved tokens {head!r} != {obj.reserved_tokens!r}")
        obj._set_learned(learned)
        return obj

    def _ids(self, strings):
        return tf.cast(self._check_built()._lookup(strings), tf.int32)

    def tokens(self, ids):
        """int ids [...] (dense or ragged) -> tokens, same shape; out-of-range ids raise."""
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(self.tokens(ids.flat_values))
        return self._inverse(_checked_ids(ids, self.vocabulary_size, type(self).__name__))

    def _join(self, ids, separator: str):
        """ids [..., time] -> string [...]: drops pad/start/end and everything after [END]."""
        ids = tf.cast(ids.to_tensor(PAD_ID) if isinstance(ids, tf.RaggedTensor) else ids, tf.int64)
        keep = tf.not_equal(ids, PAD_ID)
        if self.add_start_end:
            ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1) > 0
            keep &= tf.not_equal(ids, START_ID) & ~ended
        kept = tf.ragged.boolean_mask(self.tokens(ids), keep)
        return tf.strings.reduce_join(kept, axis=-1, separator=separator)


def _read_files(directory, name, class_name):
    meta_path = os.path.join(directory, f"{name}.json")
    vocab_path = os.path.join(directory, f"{name}.vocab.txt")
    texts = []
    for path in (meta_path, vocab_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        with open(path, encoding="utf-8", newline="") as f:
            texts.append(f.read())
    meta = json.loads(texts[0])
    if meta.get("class") != class_name or meta.get("format") != _FORMAT:
        raise ValueError(f"{meta_path}: holds a {meta.get('class')!r} (format "
                         f"{meta.get('format')!r}), expected {class_name!r} format {_FORMAT}")
    vocab = [_unescape(line) for line in texts[1].split("\n")[:-1]]
    if len(vocab) != meta["vocabulary_size"]:
        raise ValueError(f"{vocab_path}: {len(vocab)} tokens, but {meta_path} says "
                         f"vocabulary_size={meta['vocabulary_size']}")
    return meta, vocab


class WordVectorizer(_Vocabulary):
    """Raw text -> word ids, a Keras ``TextVectorization`` (output_mode "int").

    Args:
        max_tokens: Vocabulary cap, reserved ids included (None = no cap).
        output_sequence_length: Pad/truncate to this length (None = longest in the batch).
        standardize: None, "lower", "strip_punctuation" or "lower_and_strip_punctuation".
        split: "whitespace" (Keras) or "punctuation" (:func:`tokenize`: words and punctuation).
        ngrams: None, an int or a tuple of ints, as Keras' ``ngrams``.
        add_start_end: Reserve ids 2/3 for "[START]"/"[END]" (seq2seq targets).
    """

    _default_name, _separator = "words", " "

    def __init__(self, max_tokens=20000, output_sequence_length=None,
                 standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None,
                 add_start_end=False):
        super().__init__(max_tokens, add_start_end)
        for arg, value, allowed in (("standardize", standardize, _STANDARDIZE),
                                    ("split", split, ("whitespace", "punctuation"))):
            if value not in allowed:
                raise ValueError(f"{arg} must be one of {allowed}, got {value!r}")
        _optional_positive("output_sequence_length", output_sequence_length)
        self.output_sequence_length, self.standardize, self.split = (
            output_sequence_length, standardize, split)
        self.ngrams = list(ngrams) if isinstance(ngrams, (list, tuple)) else ngrams

    def _config(self):
        return {"max_tokens": self._cap, "add_start_end": self.add_start_end,
                **{k: getattr(self, k) for k in ("output_sequence_length", "standardize", "split",
                                                 "ngrams")}}

    def _counter(self, vocabulary=None):  # counts when adapted; with a vocabulary: the lookup
        ngrams = tuple(self.ngrams) if isinstance(self.ngrams, list) else self.ngrams
        return keras.layers.TextVectorization(
            standardize=self.standardize, ngrams=ngrams, vocabulary=vocabulary, output_mode="int",
            split="whitespace" if self.split == "whitespace" else tokenize,
            output_sequence_length=None if vocabulary is None else self.output_sequence_length)

    def _make_layers(self, vocabulary):
        self._lookup = self._counter(vocabulary)

    def __call__(self, text, ragged: bool = False):
        """string ``[]`` -> int32 ``[time]``; ``[batch]`` -> int32 ``[batch, time]`` (0-padded),
        or ``tf.RaggedTensor`` ``[batch, None]`` with ``ragged=True`` (exact lengths: vectorise
        in batches, ``unbatch()``, then bucket by length)."""
        text = _text(text)
        if text.shape.rank == 0:
            return self._ids(text[tf.newaxis])[0]
        ids = self._ids(text)
        # no token maps to 0, so the trailing zeros are exactly the padding
        return tf.RaggedTensor.from_tensor(ids, padding=PAD_ID) if ragged else ids


class TokenVocabulary(_Vocabulary):
    """Pre-tokenised strings ``[..., time]`` -> ids of the same shape (a ``StringLookup``);
    padding tokens "" -> 0, unknown -> 1. :func:`tokenize` gets tokens from raw text in-graph.

    Args:
        max_tokens: Vocabulary cap, reserved ids included (None = no cap).
        lowercase: Lower-case tokens before the lookup (and when adapting).
        add_start_end: Reserve ids 2/3 for "[START]"/"[END]".
    """

    _default_name = "tokens"

    def __init__(self, max_tokens=20000, lowercase=False, add_start_end=False):
        super().__init__(max_tokens, add_start_end, lowercase)

    def __call__(self, tokens):
        """string ``[..., time]`` (dense or ragged) -> int32 ids, same shape."""
        return self._ids(self._lower(tokens))


class CharVocabulary(_Vocabulary):
    """Text -> Unicode code point ids (``tf.strings.unicode_split``), and ids -> text.

    Args:
        max_chars: Vocabulary cap, reserved ids included (None = no cap).
        lowercase: Lower-case (UTF-8 aware) before splitting.
        add_start_end: Reserve ids 2/3; :meth:`__call__` wraps each text in [START] ... [END].
    """

    _default_name, _size_arg, _separator = "chars", "max_chars", ""

    def __init__(self, max_chars=None, lowercase=False, add_start_end=True):
        super().__init__(max_chars, add_start_end, lowercase)

    def _units(self, text):
        return tf.strings.unicode_split(self._lower(text), "UTF-8")

    def __call__(self, text, add_start_end: bool | None = None, ragged: bool = False):
        """string ``[]`` -> int32 ``[chars]``; ``[batch]`` -> int32 ``[batch, chars]`` (0-padded;
        ragged ``[batch, None]`` with ``ragged=True``). ``add_start_end`` (default: the
        constructor's) wraps each text in START_ID ... END_ID."""
        wrap = self.add_start_end if add_start_end is None else add_start_end
        if wrap and not self.add_start_end:
            raise ValueError("add_start_end=True needs a vocabulary built with add_start_end=True")
        text = _text(text)
        scalar = text.shape.rank == 0
        ids = self._ids(self._units(text[tf.newaxis] if scalar else text))
        if wrap:
            edge = tf.ones([ids.nrows(), 1], tf.int32)
            ids = tf.concat([edge * START_ID, ids, edge * END_ID], axis=1)
        if scalar:
            return ids.to_tensor(PAD_ID)[0]
        return ids if ragged else ids.to_tensor(PAD_ID)

    def token_chars(self, tokens, max_word_length: int | None = None):
        """Per-token character ids for NER: string ``[..., words]`` -> int32 ``[..., words,
        chars]``, 0-padded to the longest word (or exactly ``max_word_length``, truncating).
        No start/end ids; a padding token "" gives a row of zeros."""
        _optional_positive("max_word_length", max_word_length)
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.convert_to_tensor(tokens, tf.string)
        if tokens.shape.rank == 0:
            raise ValueError("token_chars expects tokens of rank >= 1, got a scalar")
        ids = self._ids(self._units(tokens))
        shape = [None] * (ids.shape.rank - 1) + [max_word_length]
        return ids.to_tensor(PAD_ID, shape=shape if max_word_length else None)


class LabelLookup(tf.Module):
    """Class or tag names <-> ids ``0..n-1`` in-graph (``StringLookup``, no pad, no OOV);
    unknown labels and out-of-range ids raise ``InvalidArgumentError`` naming the value."""

    _default_name = "labels"

    def __init__(self, labels):
        super().__init__()
        labels = [str(x) for x in labels]
        if not labels or "" in labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be non-empty, unique and non-empty strings: {labels!r}")
        self._labels = tuple(labels)
        kwargs = {"vocabulary": labels, "num_oov_indices": 0, "mask_token": None}
        self._lookup = keras.layers.StringLookup(**kwargs)
        self._inverse = keras.layers.StringLookup(invert=True, **kwargs)

    vocabulary_size = property(lambda self: len(self._labels))

    def get_vocabulary(self) -> list[str]:
        return list(self._labels)

    def __call__(self, labels):
        """string ``[...]`` -> int32 ``[...]``."""
        return tf.cast(self._lookup(tf.convert_to_tensor(labels, tf.string)), tf.int32)

    def decode(self, ids):
        """int ``[...]`` -> string ``[...]``."""
        return self._inverse(_checked_ids(ids, len(self._labels), "LabelLookup"))

    def save(self, directory: str, name: str | None = None) -> None:
        """Writes ``<name>.vocab.txt`` (one label a line, line i = id i) and ``<name>.json``."""
        _write_files(self, directory, name or self._default_name, self._labels, {}, {})

    @classmethod
    def load(cls, directory: str, name: str | None = None) -> "LabelLookup":
        return cls(_read_files(directory, name or cls._default_name, cls.__name__)[1])
