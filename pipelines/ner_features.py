"""In-graph NER features, the same in ``tf.data`` and in the exported serving function.

* :func:`casing_ids`: the casing class of every token (an index into
  ``models.tagger.CASING_CLASSES``).
* :func:`replace_singletons`: training-time [UNK] replacement of rare words.
* :func:`convert_tags_graph`: tag scheme conversion of padded tag-string batches (the in-graph
  twin of :func:`pipelines.tags.convert`).
* :func:`document_keys`: word identities and capitalisation for document-context pooling.
* :func:`first_chars`: the characters of each token the char encoder reads.
"""

from __future__ import annotations

import tensorflow as tf

from models.tagger import CASING_CLASSES
from pipelines.vocab import OOV_ID

# (class id, RE2 full-match pattern), checked from the LAST to the first so earlier entries win.
_CASING_RULES = (
    (1, r"[\p{N}.,\-/:%]*\p{N}[\p{N}.,\-/:%]*"),                      # numeric: 3.5, 1,000, 2-1
    (2, r"[^\p{Ll}\p{N}]*\p{Lu}[^\p{Ll}\p{N}]*"),                     # upper: EU, U.S
    (3, r"\p{Lu}[^\p{Lu}\p{N}]*\p{Ll}[^\p{Lu}\p{N}]*"),               # title: Paris
    (4, r"[^\p{Lu}\p{N}]*\p{Ll}[^\p{Lu}\p{N}]*"),                     # lower: said
    (5, r"[^\p{N}]*(\p{Lu}[^\p{N}]*\p{Ll}|\p{Ll}[^\p{N}]*\p{Lu})[^\p{N}]*"),  # mixed: iPhone
    (6, r".*\p{N}.*"),                                                # has_digit: A380, 3rd
    (7, r"[\p{P}\p{S}]+"),                                            # punct: , " $
)
assert CASING_CLASSES[1:8] == ("numeric", "upper", "title", "lower", "mixed", "has_digit",
                               "punct"), "casing rules out of sync with models.tagger"


def casing_ids(tokens):
    """string ``[...]`` -> int32 ``[...]`` index into ``CASING_CLASSES``; "" (padding) -> 0,
    tokens matching no rule (e.g. caseless scripts) -> ``other``."""
    tokens = tf.convert_to_tensor(tokens, tf.string)
    ids = tf.fill(tf.shape(tokens), len(CASING_CLASSES) - 1)
    for class_id, pattern in reversed(_CASING_RULES):
        ids = tf.where(tf.strings.regex_full_match(tokens, pattern), class_id, ids)
    return tf.where(tf.equal(tokens, ""), 0, ids)


def convert_tags_graph(tags, source: str, target: str):
    """In-graph scheme conversion of tag strings ``[B, T]`` (padding "") for serving.

    Goes through IOB2: BIOES -> IOB2 (S->B, E->I), then IOB2 -> IOB1 (B-X stays B only right
    after an X token) or -> BIOES (B/I become S/E where the entity does not continue)."""
    if source == "BIOES":
        tags = tf.strings.regex_replace(tf.strings.regex_replace(tags, "^S-", "B-"), "^E-", "I-")
    if target == "IOB2":
        return tags
    prefix = tf.strings.substr(tags, 0, 1)
    kind = tf.strings.regex_replace(tags, "^[BI]-", "")
    is_entity = tf.logical_or(tf.equal(prefix, "B"), tf.equal(prefix, "I"))
    blank = tf.fill(tf.stack([tf.shape(tags)[0], 1]), "")
    if target == "IOB1":
        prev_kind = tf.concat([blank, kind[:, :-1]], axis=1)
        return tf.where(tf.equal(prefix, "B") & tf.not_equal(prev_kind, kind), "I-" + kind, tags)
    next_prefix = tf.concat([prefix[:, 1:], blank], axis=1)
    next_kind = tf.concat([kind[:, 1:], blank], axis=1)
    ends = is_entity & ~(tf.equal(next_prefix, "I") & tf.equal(next_kind, kind))
    single = ends & tf.equal(prefix, "B")
    return tf.where(single, "S-" + kind, tf.where(ends & ~single, "E-" + kind, tags))


def replace_singletons(word_ids, singleton, rate: float, seed: int):
    """Training-time [UNK] replacement (Lample et al. 2016): each word id that is a singleton
    of the training set becomes ``OOV_ID`` with probability ``rate``, so the embedding of
    [UNK] is trained and rare words lean on their characters and casing, as unseen words at
    test time must. ``word_ids``: int32 [T]; ``singleton``: bool [vocabulary_size]."""
    drop = tf.gather(singleton, word_ids) & (
        tf.random.uniform(tf.shape(word_ids), seed=seed) < rate)
    return tf.where(drop, OOV_ID, word_ids)


def document_keys(tokens):
    """string ``[...]`` -> (int64 ``[...]`` word identity, bool ``[...]`` capitalised) for
    ``models.layers.document_context.pool_repeated_tokens``: the key is a 62-bit hash of the
    lowercased token (so "JAPAN" in a headline and "Japan" in the text are one word); the
    potentials of tokens that start with an upper-case letter are pooled."""
    tokens = tf.convert_to_tensor(tokens, tf.string)
    keys = tf.strings.to_hash_bucket_fast(tf.strings.lower(tokens, encoding="utf-8"), 2 ** 62)
    return keys, tf.strings.regex_full_match(tokens, r"\p{Lu}.*")


def first_chars(tokens, max_word_length: int):
    """string ``[...]`` -> each token cut to its first ``max_word_length`` characters (code
    points, valid UTF-8 expected), BEFORE the characters are split out: a long token never
    makes the ``[..., T, C]`` char tensor wider than ``max_word_length``."""
    return tf.strings.substr(tokens, 0, max_word_length, unit="UTF8_CHAR")
