"""Subword units for the seq2seq task (``--set unit=subword``): fitting, saving, loading.

The vocabularies are :class:`pipelines.subword.SubwordVocabulary` (SentencePiece run by TF
Text ops, so the export still takes and returns raw strings). ``shared_vocab=true`` trains one
model on the sources and targets together and uses the same object for both sides (saved once,
as ``shared``); else one model per side (``source``, ``target``), each ``vocab_size`` pieces.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from pipelines.subword import MIN_VOCAB_SIZE, MODEL_TYPES, SubwordVocabulary

SUBWORD_FILE = "subword.json"


def check_config(config, checks) -> None:
    """Adds the subword and model-shape settings' problems to ``checks``
    (``Seq2SeqConfig.check``; kept here so tasks/seq2seq.py stays the task's outline)."""
    checks.one_of(subword_model=MODEL_TYPES)
    if config.unit == "subword":
        checks.at_least(MIN_VOCAB_SIZE, "vocab_size")
    # num_layers is the encoder's depth: a residual needs a second layer to add its input to.
    checks.require("encoder_residual", not config.encoder_residual or config.num_layers >= 2,
                   "true only with num_layers >= 2 (the first encoder layer has no residual)")
    checks.require("share_embeddings", not config.share_embeddings or (
        config.unit == "subword" and config.shared_vocab),
        "true only with unit=subword and shared_vocab=true (one vocabulary for both sides)")


def fit_subword(config, train: tf.data.Dataset):
    """``(source, target)`` SubwordVocabulary trained on the training split only.

    Args:
        config: a ``Seq2SeqConfig`` (``vocab_size``, ``shared_vocab``, ``subword_model``,
            ``lowercase``, ``seed``).
        train: the training split, elements ``{"source": string [], "target": string []}``.
    """
    def train_on(*fields):
        texts = train.map(lambda e: tf.stack([e[f] for f in fields])).unbatch()
        return SubwordVocabulary.train(texts, config.vocab_size, config.subword_model,
                                       lowercase=config.lowercase, seed=config.seed)

    if config.shared_vocab:
        shared = train_on("source", "target")
        return shared, shared
    return train_on("source"), train_on("target")


def save_subword(source, target, assets_dir: str) -> None:
    """Writes ``shared.*`` (one object for both sides) or ``source.*`` and ``target.*``."""
    shared = source is target
    if shared:
        source.save(assets_dir, "shared")
    else:
        source.save(assets_dir, "source")
        target.save(assets_dir, "target")
    with open(os.path.join(assets_dir, SUBWORD_FILE), "w", encoding="utf-8") as f:
        json.dump({"shared": shared}, f)


def load_subword(assets_dir: str):
    """The inverse of :func:`save_subword`: ``(source, target)`` (the same object if shared)."""
    path = os.path.join(assets_dir, SUBWORD_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"subword vocabulary index not found: {path}")
    with open(path, encoding="utf-8") as f:
        shared = json.load(f)["shared"]
    if shared:
        vocab = SubwordVocabulary.load(assets_dir, "shared")
        return vocab, vocab
    return (SubwordVocabulary.load(assets_dir, "source"),
            SubwordVocabulary.load(assets_dir, "target"))
