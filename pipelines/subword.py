"""Subword vocabularies: a SentencePiece model trained on the training split, run in-graph.

:class:`SubwordVocabulary` trains a SentencePiece unigram or BPE model with the
``sentencepiece`` package (the training texts streamed to a temporary file) and tokenises /
detokenises with TF Text's SentencePiece ops (see :func:`_sentencepiece_ops`), so an exported
serving function takes and returns raw strings with TF ops only. Loading such an export needs
the TF Text op library: TF Serving's model server has it built in; a Python loader must
``import tensorflow_text`` first.

Ids follow :mod:`pipelines.vocab`: 0 = padding (token ""), 1 = "[UNK]", 2 = "[START]", 3 =
"[END]", then 256 byte pieces ``<0x00>`` .. ``<0xFF>`` (byte fallback: a character without a
piece is spelled as its UTF-8 bytes, so no text ever becomes "[UNK]"), then the learned pieces.
Normalisation is the identity and whitespace is kept as is, so ``decode(tokenize(text)) ==
text`` byte for byte (accents, punctuation, casing, inner and trailing spaces) unless
``lowercase``; the one exception is leading whitespace, which TF Text's detokenizer drops.

``save(directory, name)`` writes ``<name>.spm.model`` (the SentencePiece model proto) and
``<name>.json`` (settings, size); the model file is tracked as a ``tf.saved_model.Asset``, so
a SavedModel holding the vocabulary carries it under ``assets/``. (The graphs also embed the
same bytes: ``SentencepieceOp`` takes the model proto as an attribute, not as a tensor input.)
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import tensorflow as tf

from pipelines.vocab import END_ID, END_TOKEN, OOV_TOKEN, PAD_ID, START_ID, START_TOKEN

_FORMAT = 1
MODEL_TYPES = ("unigram", "bpe")
#: Reserved ids (4) + byte pieces (256) + at least one learned piece.
MIN_VOCAB_SIZE = 261
_PAD_PIECE = "[PAD]"  # SentencePiece needs a non-empty piece; reported as "" like pipelines.vocab


def _sentencepiece_ops():
    """TF Text's generated SentencePiece ops (importing ``tensorflow_text`` registers them).

    Used directly rather than through ``tensorflow_text.SentencepieceTokenizer``: that class
    creates its model resource once, eagerly, and the resource is owned by the op's kernel, so
    ``tf.random.set_seed`` (which clears the eager kernel cache; the runner seeds more than once)
    deletes it and every later call fails with "Resource ... SentencepieceResource does not
    exist". Here each graph (tf.function, Dataset.map, the exported signatures) creates its own
    handle op, which lives as long as that graph.
    """
    try:
        import tensorflow_text  # noqa: F401
        from tensorflow_text.python.ops.sentencepiece_tokenizer import (
            gen_sentencepiece_tokenizer,
        )
    except ImportError as error:  # pragma: no cover - an install problem, named once
        raise ImportError("unit=subword needs tensorflow-text (pip install "
                          "'tensorflow-text>=2.16,<2.22' matching tensorflow)") from error
    return gen_sentencepiece_tokenizer


def train_sentencepiece(texts, vocab_size: int, model_type: str = "unigram",
                        max_sentences: int = 2_000_000, seed: int = 0) -> bytes:
    """Trains a SentencePiece model; returns its serialized proto.

    Args:
        texts: iterable of ``str`` or UTF-8 ``bytes`` (the TRAINING split only), streamed to a
            temporary file one sentence a line (line breaks inside a text become spaces).
        vocab_size: pieces wanted, reserved ids and the 256 byte pieces included; on little data
            SentencePiece may learn fewer (``hard_vocab_limit=False``), never more.
        model_type: ``unigram`` or ``bpe``.
        max_sentences: SentencePiece samples at most this many lines.
        seed: for SentencePiece's sampling of lines when there are more than ``max_sentences``.

    Raises:
        ValueError: a bad ``vocab_size`` / ``model_type``, or no non-empty text.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"subword model_type must be one of {MODEL_TYPES}; got {model_type!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) \
            or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be an int >= {MIN_VOCAB_SIZE} (4 reserved ids, 256 "
                         f"byte pieces, 1 learned piece); got {vocab_size!r}")
    import sentencepiece as spm

    with tempfile.TemporaryDirectory(prefix="subword-") as tmp:
        path = os.path.join(tmp, "train.txt")
        lines = 0
        with open(path, "w", encoding="utf-8") as f:
            for text in texts:
                text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
                text = " ".join(text.splitlines())
                if text.strip():
                    f.write(text + "\n")
                    lines += 1
        if not lines:
            raise ValueError("no non-empty training text for the subword vocabulary")
        model = io.BytesIO()
        spm.set_random_generator_seed(int(seed))  # line sampling is reproducible
        try:
            _train(spm, path, model, vocab_size, model_type, max_sentences)
        except RuntimeError as error:
            if "smaller than required_chars" not in str(error):
                raise
            raise ValueError(f"vocab_size={vocab_size} is too small for this training text: "
                             f"{str(error).split('] ')[-1].split('. Increase')[0]} (4 reserved "
                             f"+ 256 byte pieces + the characters covering 99.95% of the text)"
                             ) from None
    return model.getvalue()


def _train(spm, path, model, vocab_size, model_type, max_sentences):
    """One SentencePiece training run, the model proto written into ``model`` (BytesIO)."""
    spm.SentencePieceTrainer.train(
        input=path, model_writer=model, vocab_size=vocab_size, model_type=model_type,
        pad_id=PAD_ID, unk_id=1, bos_id=START_ID, eos_id=END_ID, pad_piece=_PAD_PIECE,
        unk_piece=OOV_TOKEN, bos_piece=START_TOKEN, eos_piece=END_TOKEN,
        # The rarest 0.05% of characters are spelled as bytes rather than given pieces.
        byte_fallback=True, character_coverage=0.9995, hard_vocab_limit=False,
        # Exact round trip: no NFKC, no whitespace folding.
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        input_sentence_size=max_sentences, shuffle_input_sentence=True,
        num_threads=2, minloglevel=2)


class SubwordVocabulary(tf.Module):
    """Raw text <-> SentencePiece ids in-graph (TF Text's SentencePiece ops).

    Build with :meth:`train` (on the training split) or :meth:`load`. Keep it an attribute of
    the serving module: the tokenizer resource and the model asset are saved with it.

    Args:
        model_proto: a serialized SentencePiece model trained by :func:`train_sentencepiece`
            (reserved ids as in the module docstring).
        lowercase: lower-case (UTF-8 aware) before tokenising.
        model_type: recorded in the saved settings.
    """

    _default_name = "subword"

    def __init__(self, model_proto: bytes, lowercase: bool = False, model_type: str = "unigram"):
        super().__init__()
        self._ops = _sentencepiece_ops()
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_proto=model_proto)
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        if pieces[:4] != [_PAD_PIECE, OOV_TOKEN, START_TOKEN, END_TOKEN]:
            raise ValueError(f"not a subword model of this suite: reserved pieces {pieces[:4]!r}")
        self._proto, self._pieces = bytes(model_proto), [""] + pieces[1:]
        self.lowercase, self.model_type = bool(lowercase), model_type
        # A file asset: replaced by the saved copy in save() / load(), copied into exports.
        self._tmp = tempfile.TemporaryDirectory(prefix="subword-")
        self._asset_path = os.path.join(self._tmp.name, "subword.spm.model")
        with open(self._asset_path, "wb") as f:
            f.write(self._proto)
        self.model_file = tf.saved_model.Asset(self._asset_path)

    @classmethod
    def train(cls, texts, vocab_size: int, model_type: str = "unigram", lowercase: bool = False,
              seed: int = 0) -> "SubwordVocabulary":
        """Trains on ``texts`` (iterable of str/bytes, or a tf.data.Dataset of scalar strings)."""
        if isinstance(texts, tf.data.Dataset):
            texts = texts.as_numpy_iterator()
        if lowercase:
            texts = ((t.decode("utf-8") if isinstance(t, bytes) else t).lower() for t in texts)
        return cls(train_sentencepiece(texts, vocab_size, model_type, seed=seed), lowercase,
                   model_type)

    vocabulary_size = property(lambda self: len(self._pieces), doc="int, reserved included")
    start_id, end_id = START_ID, END_ID

    def get_vocabulary(self) -> list[str]:
        """All pieces, index = id ("" for padding, "▁" marks a preceding space)."""
        return list(self._pieces)

    def __call__(self, text, ragged: bool = False):
        """string ``[batch]`` -> int32 ``[batch, time]`` 0-padded, or ragged ``[batch, None]``
        with ``ragged=True``; string ``[]`` -> int32 ``[time]``. No START/END ids."""
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank not in (0, 1):
            raise ValueError(f"expected text of shape [] or [batch], got shape {text.shape}")
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        if text.shape.rank == 0:
            return self(text[tf.newaxis], ragged=True)[0]
        values, splits = self._ops.sentencepiece_tokenize_op(
            self._handle(), text, nbest_size=0, alpha=1.0, add_bos=False, add_eos=False,
            reverse=False, out_type=tf.int32, Tsplits=tf.int64)
        ids = tf.RaggedTensor.from_row_splits(values, splits, validate=False)
        return ids if ragged else ids.to_tensor(PAD_ID)

    def _handle(self):
        return self._ops.sentencepiece_op(model=self._proto)

    def decode(self, ids):
        """int ids ``[batch, time]`` (dense or ragged) -> string ``[batch]``: stops at [END],
        drops padding and [START]; byte pieces are joined back into UTF-8 characters."""
        ids = tf.cast(ids.to_tensor(PAD_ID) if isinstance(ids, tf.RaggedTensor) else ids,
                      tf.int32)
        with tf.control_dependencies([
                tf.debugging.assert_non_negative(ids, message="SubwordVocabulary: negative id"),
                tf.debugging.assert_less(ids, self.vocabulary_size,
                                         message="SubwordVocabulary: id >= vocabulary size")]):
            ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1) > 0
        keep = tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID) & ~ended
        kept = tf.ragged.boolean_mask(ids, keep)
        return self._ops.sentencepiece_detokenize_op(
            self._handle(), kept.flat_values, kept.row_splits, add_bos=False, add_eos=False,
            reverse=False)

    def tokens(self, ids):
        """int ids (any shape) -> piece strings of the same shape (heatmap labels)."""
        return tf.gather(tf.constant(self._pieces), ids)

    def save(self, directory: str, name: str | None = None) -> None:
        """Writes ``<name>.spm.model`` and ``<name>.json``; the asset then points at the copy."""
        name = name or self._default_name
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{name}.spm.model")
        with open(path, "wb") as f:
            f.write(self._proto)
        meta = {"class": type(self).__name__, "format": _FORMAT, "vocabulary_size":
                self.vocabulary_size, "config": {"lowercase": self.lowercase,
                                                 "model_type": self.model_type}}
        with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        self.model_file = tf.saved_model.Asset(path)

    @classmethod
    def load(cls, directory: str, name: str | None = None) -> "SubwordVocabulary":
        """Rebuilds a vocabulary written by :meth:`save` (same ids, same outputs)."""
        name = name or cls._default_name
        meta_path = os.path.join(directory, f"{name}.json")
        model_path = os.path.join(directory, f"{name}.spm.model")
        for path in (meta_path, model_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"subword vocabulary file not found: {path}")
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("class") != cls.__name__ or meta.get("format") != _FORMAT:
            raise ValueError(f"{meta_path}: holds a {meta.get('class')!r} (format "
                             f"{meta.get('format')!r}), expected {cls.__name__!r} format "
                             f"{_FORMAT}")
        with open(model_path, "rb") as f:
            obj = cls(f.read(), **meta["config"])
        if obj.vocabulary_size != meta["vocabulary_size"]:
            raise ValueError(f"{model_path}: {obj.vocabulary_size} pieces, but {meta_path} says "
                             f"vocabulary_size={meta['vocabulary_size']}")
        obj.model_file = tf.saved_model.Asset(model_path)
        return obj
