"""Vocabularies fitted on the training split, saved as plain text, usable in tf.data and serving.

Reserved ids (every vocabulary except :class:`LabelLookup`)::

    0  padding / mask, token ""   (Embedding(mask_zero=True) masks it; padded batches use it)
    1  out of vocabulary, "[UNK]"
    2  "[START]", 3 "[END]"       only with ``add_start_end=True`` (generators, seq2seq targets)

Learned tokens follow, most frequent first (ties: reverse token order, as Keras sorts them).
``max_tokens`` / ``max_chars`` cap the total size, reserved ids INCLUDED.

``save(directory, name)`` writes ``<name>.vocab.txt`` (UTF-8, one token per line, line i = id i;
backslash and line-break characters are escaped as ``\\\\``, ``\\n``, ``\\uXXXX`` so a "\\n"
character stays on one line) and ``<name>.json`` (settings, reserved ids, size). ``load`` rebuilds
identical lookup tables: same ids, same outputs.

The classes are ``tf.Module`` s around Keras ``TextVectorization`` / ``StringLookup`` (TF lookup
tables): they work eagerly, inside ``Dataset.map`` and inside an exported ``tf.function``. Keep them
as attributes of the serving module so their tables are tracked and saved with it.
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
_ADAPT_BATCH = 256
_STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
# Characters str.splitlines() breaks on: escaped so any line-based reader sees one token a line.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def tokenize(text: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
    """Splits text into words and punctuation, in-graph (same result in tf.data and serving).

    Runs of Unicode separators (``\\p{Z}``) and control characters (``\\p{Cc}``: tab, newline...)
    separate tokens and are dropped. A token is a run of letters, numbers and combining marks
    (``\\p{L}\\p{N}\\p{M}``); every other character (punctuation, symbols, "_") is a token by
    itself: ``"It's 3.5!"`` -> ``["It", "'", "s", "3", ".", "5", "!"]``. Case is kept.

    Args:
        text: string ``[]`` or ``[batch]``.

    Returns:
        string ``[tokens]`` for a scalar, ``tf.RaggedTensor`` ``[batch, None]`` for a vector.
    """
    text = tf.strings.regex_replace(text, r"[\p{Z}\p{Cc}]+", " ")
    text = tf.strings.regex_replace(text, r"([^\p{L}\p{N}\p{M}\p{Z}\p{Cc}])", r" \1 ")
    return tf.strings.split(text)


def _text(text):
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank not in (0, 1):
        raise ValueError(f"expected text of shape [] or [batch], got shape {text.shape}")
    return text


def _escape(token: str) -> str:
    out = []
    for ch in token:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch in _LINE_BREAKS:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape(line: str) -> str:
    def sub(m):
        code = m.group(1)
        return {"\\": "\\", "n": "\n"}.get(code) or chr(int(code[1:], 16))
    return re.sub(r"\\(\\|n|u[0-9a-f]{4})", sub, line)


def _string_batches(data, per_element):
    """``data`` (Dataset or list) -> Dataset of 1-D string batches (``per_element`` first)."""
    if not isinstance(data, tf.data.Dataset):
        if not isinstance(data, (list, tuple)):
            raise TypeError(f"adapt expects a tf.data.Dataset or a list, got {type(data).__name__}")
        data = tf.data.Dataset.from_tensor_slices(
            tf.ragged.constant(data, dtype=tf.string) if any(
                isinstance(x, (list, tuple)) for x in data) else tf.constant(data, tf.string))
    spec = data.element_spec
    if not isinstance(spec, (tf.TensorSpec, tf.RaggedTensorSpec)) or spec.dtype != tf.string:
        raise TypeError(
            "adapt expects a dataset of strings or token lists, got element_spec "
            f"{spec}; map it to the text field first, e.g. ds.map(lambda e: e['text'])")

    def flat(x):
        x = per_element(x)
        return x.flat_values if isinstance(x, tf.RaggedTensor) else tf.reshape(x, [-1])
    # ragged_batch gives a dense batch when every element has the same static shape
    return data.map(flat).ragged_batch(_ADAPT_BATCH).map(flat)


class _Vocabulary(tf.Module):
    """Shared code: reserved ids, caps, file format, in-graph decoding."""

    _default_name = "vocab"
    _size_arg = "max_tokens"

    def __init__(self, cap, add_start_end):
        super().__init__()
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                                or cap < 3 + 2 * add_start_end):
            raise ValueError(f"{self._size_arg} must be None or an int >= "
                             f"{3 + 2 * add_start_end} (reserved ids + 1), got {cap!r}")
        self._cap = cap
        self.add_start_end = bool(add_start_end)
        self._lookup = None

    # -- subclass hooks ------------------------------------------------------------------
    def _config(self) -> dict:
        raise NotImplementedError

    def _make_layers(self, vocabulary: list[str]):
        """Builds ``self._lookup`` (string -> id) from the vocabulary without pad/OOV."""
        self._lookup = keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PAD_TOKEN,
                                                 oov_token=OOV_TOKEN)

    def _count(self, batches) -> list[str]:
        """Learned tokens of ``batches`` (1-D string batches), most frequent first."""
        counter = keras.layers.StringLookup(mask_token=PAD_TOKEN, oov_token=OOV_TOKEN)
        counter.adapt(batches)
        return counter.get_vocabulary()[2:]

    # -- public API ------------------------------------------------------------------------
    @property
    def reserved_tokens(self) -> list[str]:
        return [PAD_TOKEN, OOV_TOKEN] + ([START_TOKEN, END_TOKEN] if self.add_start_end else [])

    @property
    def start_id(self) -> int | None:
        return START_ID if self.add_start_end else None

    @property
    def end_id(self) -> int | None:
        return END_ID if self.add_start_end else None

    @property
    def vocabulary_size(self) -> int:
        self._check_built()
        return self._size

    def get_vocabulary(self) -> list[str]:
        """All tokens, index = id (reserved tokens first)."""
        self._check_built()
        return [str(t) for t in self._lookup.get_vocabulary()]

    def _set_learned(self, learned: list[str]):
        reserved = set(self.reserved_tokens)
        learned = [t for t in learned if t not in reserved]
        if self._cap is not None:
            learned = learned[: self._cap - len(self.reserved_tokens)]
        self._make_layers(self.reserved_tokens[2:] + learned)
        self._size = len(self.reserved_tokens) + len(learned)  # a python int: usable in graphs
        self._inverse = keras.layers.StringLookup(
            vocabulary=self.reserved_tokens[2:] + learned, mask_token=PAD_TOKEN,
            oov_token=OOV_TOKEN, invert=True)

    def _check_built(self):
        if self._lookup is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary yet: call adapt() "
                               "on the training split or load() a saved one")

    def save(self, directory: str, name: str | None = None) -> None:
        """Writes ``<name>.vocab.txt`` and ``<name>.json`` into ``directory`` (created)."""
        name = name or self._default_name
        os.makedirs(directory, exist_ok=True)
        vocab = self.get_vocabulary()
        with open(os.path.join(directory, f"{name}.vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(_escape(t) + "\n" for t in vocab))
        meta = {"class": type(self).__name__, "format": _FORMAT, "config": self._config(),
                "vocabulary_size": len(vocab),
                "reserved": {t or "<pad>": i for i, t in enumerate(self.reserved_tokens)}}
        with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)

    @classmethod
    def load(cls, directory: str, name: str | None = None):
        """Rebuilds a vocabulary written by :meth:`save` (same ids, same outputs)."""
        meta, vocab = _read_files(directory, name or cls._default_name, cls.__name__)
        obj = cls(**meta["config"])
        if vocab[: len(obj.reserved_tokens)] != obj.reserved_tokens:
            raise ValueError(f"{directory}/{name or cls._default_name}.vocab.txt: reserved "
                             f"tokens {vocab[:len(obj.reserved_tokens)]!r} != "
                             f"{obj.reserved_tokens!r}")
        obj._set_learned(vocab[len(obj.reserved_tokens):])
        return obj

    def _ids(self, strings):
        return tf.cast(self._lookup(strings), tf.int32)

    def _tokens(self, ids):
        """int ids (any shape) -> token strings; ids outside the vocabulary raise."""
        self._check_built()
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(self._tokens(ids.flat_values))
        ids = tf.convert_to_tensor(ids)
        tf.debugging.assert_integer(ids, message="decode expects integer ids")
        ids = tf.cast(ids, tf.int64)
        with tf.control_dependencies([tf.debugging.assert_less(
                ids, tf.cast(self.vocabulary_size, tf.int64),
                message=f"{type(self).__name__}.decode: id >= vocabulary size"),
                tf.debugging.assert_non_negative(ids, message="decode: negative id")]):
            return self._inverse(ids)

    def _join(self, ids, separator: str):
        """ids [..., time] -> string [...]: drops pad/start/end and everything after [END]."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(PAD_ID)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int64)
        tokens = self._tokens(ids)
        keep = tf.not_equal(ids, PAD_ID)
        if self.add_start_end:
            ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1) > 0
            keep &= tf.not_equal(ids, START_ID) & ~ended
        kept = tf.ragged.boolean_mask(tokens, keep)
        return tf.strings.reduce_join(kept, axis=-1, separator=separator)


def _read_files(directory, name, class_name):
    meta_path = os.path.join(directory, f"{name}.json")
    vocab_path = os.path.join(directory, f"{name}.vocab.txt")
    for path in (meta_path, vocab_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("class") != class_name or meta.get("format") != _FORMAT:
        raise ValueError(f"{meta_path}: holds a {meta.get('class')!r} (format "
                         f"{meta.get('format')!r}), expected {class_name!r} format {_FORMAT}")
    with open(vocab_path, encoding="utf-8", newline="") as f:
        text = f.read()
    vocab = [_unescape(line) for line in text.split("\n")[:-1]]
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

    _default_name = "words"

    def __init__(self, max_tokens=20000, output_sequence_length=None,
                 standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None,
                 add_start_end=False):
        super().__init__(max_tokens, add_start_end)
        if standardize not in _STANDARDIZE:
            raise ValueError(f"standardize must be one of {_STANDARDIZE}, got {standardize!r}")
        if split not in ("whitespace", "punctuation"):
            raise ValueError(f"split must be 'whitespace' or 'punctuation', got {split!r}")
        if output_sequence_length is not None and (
                not isinstance(output_sequence_length, int) or output_sequence_length <= 0):
            raise ValueError("output_sequence_length must be None or a positive int, got "
                             f"{output_sequence_length!r}")
        self.output_sequence_length = output_sequence_length
        self.standardize, self.split = standardize, split
        self.ngrams = list(ngrams) if isinstance(ngrams, (list, tuple)) else ngrams

    def _config(self):
        return {"max_tokens": self._cap, "output_sequence_length": self.output_sequence_length,
                "standardize": self.standardize, "split": self.split, "ngrams": self.ngrams,
                "add_start_end": self.add_start_end}

    def _layer(self, vocabulary=None, sequence_length=None):
        ngrams = tuple(self.ngrams) if isinstance(self.ngrams, list) else self.ngrams
        return keras.layers.TextVectorization(
            standardize=self.standardize, ngrams=ngrams, vocabulary=vocabulary,
            split="whitespace" if self.split == "whitespace" else tokenize,
            output_mode="int", output_sequence_length=sequence_length)

    def _make_layers(self, vocabulary):
        self._lookup = self._layer(vocabulary, self.output_sequence_length)

    def adapt(self, data) -> "WordVectorizer":
        """Learns the vocabulary from a dataset (or list) of strings: the TRAINING split only."""
        counter = self._layer()
        counter.adapt(_string_batches(data, lambda x: x))
        self._set_learned(counter.get_vocabulary()[2:])
        return self

    def __call__(self, text):
        """string ``[]`` -> int32 ``[time]``; ``[batch]`` -> int32 ``[batch, time]`` (0-padded)."""
        self._check_built()
        text = _text(text)
        if text.shape.rank == 0:
            return self._ids(text[tf.newaxis])[0]
        return self._ids(text)

    def decode(self, ids):
        """int ``[..., time]`` -> string ``[...]``: words joined by " " (pad/start/end dropped)."""
        return self._join(ids, " ")


class TokenVocabulary(_Vocabulary):
    """Pre-tokenised strings ``[..., time]`` -> ids of the same shape (a ``StringLookup``).

    Padding tokens ("") map to 0, unknown tokens to 1. Use :func:`tokenize` to get tokens from
    raw text the same way in training and serving.

    Args:
        max_tokens: Vocabulary cap, reserved ids included (None = no cap).
        lowercase: Lower-case tokens before the lookup (and when adapting).
        add_start_end: Reserve ids 2/3 for "[START]"/"[END]".
    """

    _default_name = "tokens"

    def __init__(self, max_tokens=20000, lowercase=False, add_start_end=False):
        super().__init__(max_tokens, add_start_end)
        self.lowercase = bool(lowercase)

    def _config(self):
        return {"max_tokens": self._cap, "lowercase": self.lowercase,
                "add_start_end": self.add_start_end}

    def _prep(self, tokens):
        if self.lowercase:
            return tf.strings.lower(tokens, encoding="utf-8")
        return tokens

    def adapt(self, data) -> "TokenVocabulary":
        """Learns from a dataset (or list) of token lists ``[time]``: the TRAINING split only."""
        self._set_learned(self._count(_string_batches(data, self._prep)))
        return self

    def __call__(self, tokens):
        """string ``[..., time]`` (dense or ragged) -> int32 ids, same shape."""
        self._check_built()
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.convert_to_tensor(tokens, tf.string)
        return self._ids(self._prep(tokens))

    def decode(self, ids, separator: str | None = None):
        """ids -> token strings of the same shape, or joined ``[...]`` when ``separator`` is set
        (then pad/start/end are dropped and decoding stops at "[END]")."""
        if separator is None:
            return self._tokens(ids)
        return self._join(ids, separator)


class CharVocabulary(_Vocabulary):
    """Text -> Unicode code point ids (``tf.strings.unicode_split``), and ids -> text.

    Args:
        max_chars: Vocabulary cap, reserved ids included (None = no cap).
        lowercase: Lower-case (UTF-8 aware) before splitting.
        add_start_end: Reserve ids 2/3; :meth:`__call__` wraps each text in [START] ... [END].
    """

    _default_name = "chars"
    _size_arg = "max_chars"

    def __init__(self, max_chars=None, lowercase=False, add_start_end=True):
        super().__init__(max_chars, add_start_end)
        self.lowercase = bool(lowercase)

    def _config(self):
        return {"max_chars": self._cap, "lowercase": self.lowercase,
                "add_start_end": self.add_start_end}

    def _chars(self, text):
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        return tf.strings.unicode_split(text, "UTF-8")

    def adapt(self, data) -> "CharVocabulary":
        """Learns the characters of a dataset (or list) of strings or token lists (TRAIN only)."""
        self._set_learned(self._count(_string_batches(data, self._chars)))
        return self

    def __call__(self, text, add_start_end: bool | None = None):
        """string ``[]`` -> int32 ``[chars]``; ``[batch]`` -> int32 ``[batch, chars]`` (0-padded).

        ``add_start_end`` (default: the constructor's) wraps each text in START_ID ... END_ID.
        """
        self._check_built()
        wrap = self.add_start_end if add_start_end is None else add_start_end
        if wrap and not self.add_start_end:
            raise ValueError("add_start_end=True needs a vocabulary built with add_start_end=True")
        text = _text(text)
        scalar = text.shape.rank == 0
        ids = self._ids(self._chars(text[tf.newaxis] if scalar else text))
        if wrap:
            edge = tf.ones([ids.nrows(), 1], tf.int32)
            ids = tf.concat([edge * START_ID, ids, edge * END_ID], axis=1)
        ids = ids.to_tensor(PAD_ID)
        return ids[0] if scalar else ids

    def token_chars(self, tokens, max_word_length: int | None = None):
        """Per-token character ids for NER: string ``[..., words]`` -> int32 ``[..., words,
        chars]``, 0-padded to the longest word (or exactly ``max_word_length``, truncating).
        No start/end ids; a padding token "" gives a row of zeros."""
        self._check_built()
        if max_word_length is not None and (not isinstance(max_word_length, int)
                                            or max_word_length <= 0):
            raise ValueError(f"max_word_length must be None or > 0, got {max_word_length!r}")
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.convert_to_tensor(tokens, tf.string)
        if tokens.shape.rank == 0:
            raise ValueError("token_chars expects tokens of rank >= 1, got a scalar")
        ids = self._ids(self._chars(tokens))
        shape = [None] * (ids.shape.rank - 1) + [max_word_length]
        return ids.to_tensor(PAD_ID, shape=shape if max_word_length else None)

    def decode(self, ids):
        """int ``[..., time]`` -> text ``[...]`` (pad/start/end dropped, stops at [END])."""
        return self._join(ids, "")


class LabelLookup(tf.Module):
    """Class or tag names <-> ids ``0..n-1`` in-graph (``StringLookup``, no pad, no OOV).

    Unknown labels and out-of-range ids raise ``InvalidArgumentError`` naming the value.
    """

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

    @property
    def vocabulary_size(self) -> int:
        return len(self._labels)

    def get_vocabulary(self) -> list[str]:
        return list(self._labels)

    def __call__(self, labels):
        """string ``[...]`` -> int32 ``[...]``."""
        return tf.cast(self._lookup(tf.convert_to_tensor(labels, tf.string)), tf.int32)

    def decode(self, ids):
        """int ``[...]`` -> string ``[...]``."""
        ids = tf.cast(ids, tf.int64)
        with tf.control_dependencies([tf.debugging.assert_non_negative(
                ids, message="LabelLookup.decode: negative id"), tf.debugging.assert_less(
                ids, tf.constant(len(self._labels), tf.int64),
                message=f"LabelLookup.decode: id >= {len(self._labels)} labels")]):
            return self._inverse(ids)

    def save(self, directory: str, name: str | None = None) -> None:
        """Writes ``<name>.vocab.txt`` (one label a line, line i = id i) and ``<name>.json``."""
        name = name or self._default_name
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"{name}.vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(_escape(t) + "\n" for t in self._labels))
        with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"class": "LabelLookup", "format": _FORMAT, "config": {},
                       "vocabulary_size": len(self._labels), "reserved": {}}, f, indent=2,
                      ensure_ascii=False)

    @classmethod
    def load(cls, directory: str, name: str | None = None) -> "LabelLookup":
        return cls(_read_files(directory, name or cls._default_name, cls.__name__)[1])
