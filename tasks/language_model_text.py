"""The word language model's preprocessing: words + ``<eos>``, the vocabulary, BPTT batches,
and exact perplexity over a whole split.

Tokens: :func:`pipelines.vocab.tokenize` (words and punctuation), lower-cased when the config
says so, then ``<eos>`` after every non-empty line (a sentence). Ids: 0 padding, 1 ``<unk>``
(out of vocabulary; the vocabulary file spells it ``[UNK]``), 2 ``<eos>``, then the words
seen at least ``min_count`` times in the training split, most frequent first, up to
``max_tokens`` ids in all.

Truncated BPTT (:func:`bptt_batches`): a split's token stream is cut into ``batch_size``
contiguous streams; batch ``k`` holds window ``k`` (``bptt`` tokens, targets shifted by one)
of every stream, so row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k`` and the
model carries its states across (``models.word_language_model``).
"""

from __future__ import annotations

import collections
import json
import math
import os
import weakref

import numpy as np
import tensorflow as tf

from models.word_language_model import build_state_model
from pipelines.vocab import OOV_ID, PAD_ID, TokenVocabulary, tokenize
from tasks.runner.errors import DataError
from tasks.runner.task import Preprocessor

EOS = "<eos>"
EOS_ID = 2  # the first learned token (always kept)
RESERVED = 3  # padding, [UNK], <eos>


class WordLMPreprocessor(Preprocessor):
    """The word vocabulary (a ``pipelines.vocab.TokenVocabulary``, a ``tf.Module``), the
    lower-casing switch and the training split's count of every id (the unigram baseline).

    Files in ``assets/``: ``words.vocab.txt`` + ``words.json`` (the vocabulary, line i = id
    i) and ``language_model.json`` (``lowercase``, ``eos``/``eos_id``, ``unigram_counts``).
    """

    def __init__(self, vocab: TokenVocabulary, lowercase: bool, counts=()):
        super().__init__()
        self.vocab, self.lowercase = vocab, bool(lowercase)
        self.set_counts(counts)
        self.eos_id = EOS_ID
        if vocab.get_vocabulary()[EOS_ID] != EOS:
            raise ValueError(f"vocabulary id {EOS_ID} must be {EOS!r}")

    @classmethod
    def fit(cls, texts: tf.data.Dataset, *, max_tokens: int, min_count: int,
            lowercase: bool) -> "WordLMPreprocessor":
        """Counts the words of ``texts`` (string [] lines, the training split) in one pass."""
        probe = cls.__new__(cls)
        Preprocessor.__init__(probe)
        probe.lowercase = bool(lowercase)
        counts: collections.Counter = collections.Counter()
        batches = texts.batch(1024).map(lambda t: probe.tokens(t).flat_values)
        for flat in batches.as_numpy_iterator():
            words, n = np.unique(flat, return_counts=True)
            counts.update(dict(zip(words.tolist(), n.tolist())))
        kept = sorted((w for w, n in counts.items() if n >= min_count),
                      key=lambda w: (-counts[w], w))
        learned = [EOS] + [w.decode("utf-8") for w in kept][:max(0, max_tokens - RESERVED)]
        vocab = TokenVocabulary(max_tokens=None)
        # The learned list is ours (min_count, <eos> first): TokenVocabulary.load takes the
        # same route after reading its file.
        vocab._set_learned(learned)
        return cls(vocab, lowercase)

    def save(self, assets_dir: str) -> None:
        self.vocab.save(assets_dir, "words")
        with open(os.path.join(assets_dir, "language_model.json"), "w", encoding="utf-8") as f:
            json.dump({"lowercase": self.lowercase, "eos": EOS, "eos_id": EOS_ID,
                       "unigram_counts": self.counts}, f)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "WordLMPreprocessor":
        with open(os.path.join(assets_dir, "language_model.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return cls(TokenVocabulary.load(assets_dir, "words"), meta["lowercase"],
                   meta["unigram_counts"])

    def set_counts(self, counts) -> None:
        """The training split's count of every id (plain data: not tracked by tf.Module)."""
        self.counts = self._no_dependency([int(c) for c in counts])

    @property
    def vocabulary_size(self) -> int:
        return self.vocab.vocabulary_size

    def tokens(self, text):
        """string [batch] -> ragged string [batch, None] words (lower-cased if so trained)."""
        words = tokenize(text)
        if self.lowercase:
            words = tf.ragged.map_flat_values(tf.strings.lower, words, encoding="utf-8")
        return words

    def ids(self, words):
        """Words (any shape, dense or ragged) -> int32 ids of the same shape."""
        return self.vocab(words)

    def line_ids(self, text):
        """One example, string [] (one or more lines) -> int32 [n]: each non-empty line's word
        ids then ``<eos>``."""
        words = self.tokens(tf.strings.split(text, "\n"))
        words = tf.ragged.boolean_mask(words, words.row_lengths() > 0)
        eos = tf.fill([words.nrows(), 1], EOS)
        return self.ids(tf.concat([words, eos], axis=1).flat_values)


def encode(preprocessor: WordLMPreprocessor, split: tf.data.Dataset) -> np.ndarray:
    """int32 [tokens]: a split's whole token stream, in order."""
    flat = (split.map(lambda e: preprocessor.line_ids(e["text"]))
            .ragged_batch(1024).map(lambda r: r.flat_values))
    parts = list(flat.as_numpy_iterator())
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros([0], np.int32)


def bptt_batches(ids: np.ndarray, batch_size: int, bptt: int, what: str = "split"):
    """``(inputs, targets)`` batches, each int32 [batch_size, bptt], for truncated BPTT.

    Raises:
        DataError: Too few tokens for one batch (naming the counts).
    """
    length = len(ids) // batch_size
    windows = (length - 1) // bptt
    if windows < 1:
        raise DataError(f"the {what} has {len(ids)} tokens: too few for batch_size="
                        f"{batch_size} streams of bptt={bptt} + 1 tokens; use more data or "
                        f"a smaller batch_size / bptt")
    streams = ids[:batch_size * length].reshape(batch_size, length)
    starts = np.arange(windows) * bptt
    index = starts[:, None] + np.arange(bptt)[None, :]  # [windows, bptt]
    inputs = np.transpose(streams[:, index], (1, 0, 2))  # [windows, batch, bptt]
    targets = np.transpose(streams[:, index + 1], (1, 0, 2))
    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def stream_log_likelihood(model, ids: np.ndarray, streams: int, window: int):
    """Exact total log-likelihood (nats) of every token of ``ids`` (its first token read after
    ``<eos>``), with the states carried through ``streams`` contiguous parts.

    Returns:
        ``(total, count)``: float sum of log p(token | all before it in its part), int tokens.
    """
    n = len(ids)
    if n == 0:
        return 0.0, 0
    streams = max(1, min(streams, n))
    length = math.ceil(n / streams)
    inputs = np.zeros(streams * length, np.int32)
    targets = np.zeros(streams * length, np.int32)
    inputs[:n] = np.concatenate([[EOS_ID], ids[:-1]])
    targets[:n] = ids
    inputs, targets = inputs.reshape(streams, length), targets.reshape(streams, length)
    state_model, call = _state_call(model)
    states = [tf.zeros((streams, *s.shape[1:]), s.dtype) for s in state_model.inputs[1:]]
    total, count = 0.0, 0
    for start in range(0, length, window):
        x, y = inputs[:, start:start + window], targets[:, start:start + window]
        out = call(tf.constant(x), states)
        logits, states = out[0], list(out[1:])
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        picked = tf.gather(log_probs, tf.constant(y), batch_dims=2).numpy()
        scored = y != PAD_ID
        total += float(picked[scored].sum())
        count += int(scored.sum())
    return total, count


#: model -> (state model, its compiled call): built once per model, not once per epoch.
_STATE_CALLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _state_call(model):
    if model not in _STATE_CALLS:
        state_model = build_state_model(model)
        _STATE_CALLS[model] = (state_model, tf.function(
            lambda x, states: state_model([x, *states], training=False),
            reduce_retracing=True))
    return _STATE_CALLS[model]


def unigram_log_likelihood(counts, ids: np.ndarray) -> float:
    """Total log-likelihood (nats) of ``ids`` under the training split's add-one smoothed
    unigram distribution over ids 1..V-1 (the baseline a language model must beat)."""
    counts = np.asarray(counts, np.float64)
    if not len(counts):
        return float("nan")
    probs = (counts[1:] + 1.0) / (counts[1:].sum() + len(counts) - 1)
    return float(np.log(probs[ids - 1]).sum()) if len(ids) else 0.0


def perplexity_metrics(total: float, count: int) -> dict:
    """Mean NLL per token (nats, ``<eos>`` included) and its exponential."""
    nll = -total / max(count, 1)
    return {"loss": nll, "perplexity": math.exp(min(nll, 50.0)), "tokens": int(count)}


def oov_rate(ids: np.ndarray) -> float:
    """Share of tokens that are ``<unk>``."""
    return float(np.mean(ids == OOV_ID)) if len(ids) else 0.0
