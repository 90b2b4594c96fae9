"""Named-entity recognition: tokens -> entity tags with a BiRNN-CRF (issue #5).

    python -m tasks.ner train --data ../shared/data/conll2003 --epochs 20
    python -m tasks.ner train --set crf=false --set char_encoder=cnn
    python -m tasks.ner predict "Angela Merkel visited Paris on Monday ."
    python -m tasks.ner export
    python -m tasks.ner train --set char_lm=runs/lm_fw,runs/lm_bw  # char-LM features

Data: a CoNLL directory/file, ``conll2003`` (TFDS, online) or ``synthetic`` (offline demo).
Tags are converted to ``scheme`` (BIOES by default) for training and back to the corpus's own
scheme for metrics (seqeval, strict) and serving. Serving takes raw sentences and tokenises
them in the graph with :func:`pipelines.vocab.tokenize` (whitespace separates; every
punctuation/symbol character is a token of its own: ``"U.S."`` -> ``U . S .``).
In-graph features (casing, singleton [UNK], tag conversion) are in
:mod:`pipelines.ner_features`. Evaluation (:mod:`tasks.ner_eval`) and the export's
``tag_document`` signature add document context (:mod:`models.layers.document_context`): repeated
words of a ``-DOCSTART-`` document share their evidence. The serving module and its request
limits are in :mod:`tasks.ner_serving`. Reads top-down: config -> preprocessing -> metrics ->
serving helpers -> task.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from models.layers.embeddings import format_coverage, load_word_vectors
from models.tagger import build_tagger_model
from pipelines import batching, sources
from pipelines import tags as tagging
from pipelines.ner_features import (
    casing_ids,
    convert_tags_graph,
    first_chars,
    replace_singletons,
)
from pipelines.vocab import OOV_ID, CharVocabulary, LabelLookup, TokenVocabulary
from tasks import ner_char_lm, ner_data  # noqa: F401 (ner_data: registers its data sources)
from tasks.ner_eval import SplitTagger, entity_metrics  # noqa: F401 (entity_metrics: API)
from tasks.ner_serving import NerServing
from tasks.runner import registry
from tasks.runner.cli import main
from tasks.runner.config import ConfigError, TaskConfig
from tasks.runner.task import Preprocessor, Task


# ---- config -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NerConfig(TaskConfig):
    data: str = "synthetic"
    scheme: str = "BIOES"          # internal tag scheme: BIOES|IOB2
    crf: bool = True               # CRF head (Viterbi) or softmax head (argmax)
    char_encoder: str = "lstm"     # lstm|cnn|none
    char_dim: int = 25
    char_units: int = 25
    casing_dim: int = 8
    embedding_dim: int = 100       # word embedding size (taken from the file with `embeddings`)
    embeddings: str = ""           # GloVe/word2vec text file; "" = learn from scratch
    max_tokens: int = 30000        # word vocabulary cap, reserved ids included
    lowercase: bool = True         # lowercase words (characters and casing keep the case)
    singleton_unk: float = 0.5     # P(a word seen once in train -> [UNK]) per training step
    max_word_length: int = 25      # characters per token kept for the char encoder
    max_text_tokens: int = 1000    # serving: tokens per sentence (more: cut, `truncated`)
    units: int = 100
    num_layers: int = 2
    dropout: float = 0.5
    epochs: int = 30
    patience: int = 5
    lr_patience: int = 2
    ema_momentum: float = 0.999    # steadier valid F1 (CoNLL, one run each: 90.1 vs 89.5)
    # Weight of the document mean in a capitalised token's potentials at evaluation (repeated
    # words of a -DOCSTART- document, models.layers.document_context); 0 = sentence level only.
    document_context: float = 0.5
    # Flair-style char-LM features (tasks.ner_char_lm): "FW_RUN[,BW_RUN]" char_generation runs.
    char_lm: str = ""
    char_lm_trainable: bool = False  # fine-tune the char LMs (default: frozen features)

    def __post_init__(self):
        for name in ("singleton_unk", "document_context"):  # at construction, as before
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)!r} (must be in [0, 1])")

    def check(self, checks):
        super().check(checks)
        checks.require("scheme", str(self.scheme).upper() in ("BIOES", "IOBES", "IOB2", "BIO"),
                       "must be BIOES or IOB2")
        checks.one_of(char_encoder=("lstm", "cnn", "none"))
        checks.at_least(1, "char_dim", "char_units", "casing_dim", "max_word_length",
                        "max_text_tokens")
        checks.at_least(3, "max_tokens")  # padding, [UNK] and one word
        checks.require("embeddings", not self.embeddings or os.path.isfile(self.embeddings),
                       "no such file")
        ner_char_lm.check_config(checks, self)


# ---- preprocessing ------------------------------------------------------------------------
class NerPreprocessor(Preprocessor):
    """Word and character vocabularies (training split), tag names, schemes."""

    def __init__(self, words, chars, labels, scheme, input_scheme, max_word_length,
                 char_lm=None):
        super().__init__()
        self.words, self.chars, self.labels = words, chars, labels
        self.char_lm = char_lm  # ner_char_lm.CharLMInputs, or None without char-LM features
        self.scheme, self.input_scheme = scheme, input_scheme
        self.max_word_length = int(max_word_length)

    @property
    def tag_names(self) -> list[str]:
        return self.labels.get_vocabulary()

    def save(self, assets_dir):
        self.words.save(assets_dir, "words")
        self.chars.save(assets_dir, "chars")
        self.labels.save(assets_dir, "tags")
        if self.char_lm is not None:
            self.char_lm.save(assets_dir)
        with open(os.path.join(assets_dir, "ner.json"), "w", encoding="utf-8") as f:
            json.dump({"scheme": self.scheme, "input_scheme": self.input_scheme,
                       "max_word_length": self.max_word_length}, f)

    @classmethod
    def load(cls, assets_dir, config=None):
        with open(os.path.join(assets_dir, "ner.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return cls(TokenVocabulary.load(assets_dir, "words"),
                   CharVocabulary.load(assets_dir, "chars"), LabelLookup.load(assets_dir, "tags"),
                   meta["scheme"], meta["input_scheme"], meta["max_word_length"],
                   ner_char_lm.CharLMInputs.load(assets_dir))

    def features(self, tokens):
        """string tokens ``[..., T]`` ("" = padding) -> the tagger's input dict (``char_ids``
        ``[..., T, C]``, C = the longest token's characters up to ``max_word_length``)."""
        chars = self.chars.token_chars(first_chars(tokens, self.max_word_length))
        return {"word_ids": self.words(tokens), "char_ids": chars,
                "casing_ids": casing_ids(tokens),
                **(self.char_lm.features(tokens) if self.char_lm is not None else {})}

    def tag_names_of(self, tag_ids):
        """int tag ids ``[...]`` (the internal ``scheme``) -> tag strings ``[...]``."""
        return self.labels.decode(tag_ids)

    def corpus_tags(self, tags):
        """Tags ``[..., T]`` of the internal ``scheme`` -> the corpus's own (``input_scheme``),
        in-graph ("" stays "")."""
        return convert_tags_graph(tags, self.scheme, self.input_scheme)


def singleton_ids(preprocessor, split) -> np.ndarray:
    """bool ``[vocabulary_size]``: word ids that occur exactly once in ``split``'s tokens."""
    counts = np.zeros(preprocessor.words.vocabulary_size, np.int64)
    for ids in split.map(lambda e: preprocessor.words(e["tokens"])).as_numpy_iterator():
        counts += np.bincount(ids, minlength=counts.size)
    counts[: OOV_ID + 1] = 0  # padding and [UNK] are never "singletons"
    return counts == 1


# ---- metrics ------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="recurrent_suite")
class TagF1(keras.metrics.Metric):
    """Token-level micro F1 over entity tags (every tag but ``outside_id``), from the argmax of
    the model output on unmasked positions: a cheap, head-independent training-time view of
    progress (checkpoints and the tuner select on the entity F1 of ``epoch_metrics``)."""

    def __init__(self, outside_id=0, name="tag_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.outside_id = int(outside_id)
        self.counts = self.add_variable(shape=(3,), initializer="zeros", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        pred = ops.argmax(y_pred, axis=-1)
        true = ops.reshape(ops.cast(y_true, pred.dtype), ops.shape(pred))
        # CRFModel passes the mask as sample_weight; a softmax output carries Keras' mask.
        mask = getattr(y_pred, "_keras_mask", None) if sample_weight is None else sample_weight
        m = ops.ones_like(pred, "float32") if mask is None else ops.cast(mask, "float32")
        m = ops.broadcast_to(m if len(m.shape) == 2 else m[:, None], ops.shape(pred))
        true_ent = ops.cast(true != self.outside_id, "float32") * m
        pred_ent = ops.cast(pred != self.outside_id, "float32") * m
        hit = ops.cast(pred == true, "float32") * true_ent
        self.counts.assign_add(ops.stack([ops.sum(hit), ops.sum(pred_ent), ops.sum(true_ent)]))

    def result(self):
        return 2.0 * self.counts[0] / keras.ops.maximum(self.counts[1] + self.counts[2], 1.0)

    def reset_state(self):
        self.counts.assign(keras.ops.zeros((3,)))

    def get_config(self):
        return {**super().get_config(), "outside_id": self.outside_id}


# ---- serving helpers (the module: tasks.ner_serving) ---------------------------------------
def spans_with_offsets(sentence: str, tokens: list[str], tags: list[str]) -> list[dict]:
    """Entity spans as ``{"text", "type", "start", "end"}`` with character offsets into
    ``sentence`` (tokens are substrings of it, found left to right)."""
    offsets, pos = [], 0
    for token in tokens:
        start = sentence.find(token, pos)
        start = pos if start < 0 else start
        offsets.append((start, start + len(token)))
        pos = start + len(token)
    scheme = "BIOES" if any(t[:2] in ("S-", "E-") for t in tags) else "IOB2"
    with warnings.catch_warnings():  # IOB1 / stray I- tags read the conlleval way, quietly
        warnings.simplefilter("ignore")
        spans = tagging.to_spans(tags, scheme, repair=True)
    out = []
    for kind, first, last in spans:
        start, end = offsets[first][0], offsets[last - 1][1]
        out.append({"text": sentence[start:end], "type": kind, "start": start, "end": end})
    return out


def highlight(sentence: str, spans: list[dict]) -> str:
    """``"[Angela Merkel|PER] visited [Paris|LOC] ."``"""
    out, pos = [], 0
    for span in spans:
        out += [sentence[pos:span["start"]], f"[{span['text']}|{span['type']}]"]
        pos = span["end"]
    return "".join(out + [sentence[pos:]])


# ---- the task -------------------------------------------------------------------------------
@registry.register
class NerTask(Task):
    """NER with word + char + casing features, a stacked BiRNN and a CRF (or softmax)."""

    name = "ner"
    order = 20  # position in task listings and `make demo`
    config_class = NerConfig
    preprocessor_class = NerPreprocessor
    serving_class = NerServing
    monitor = "entity_f1"          # from epoch_metrics
    monitor_mode = "max"
    demo_overrides = {"max_examples": 400, "epochs": 3, "embedding_dim": 32, "units": 32,
                      "num_layers": 1, "char_encoder": "cnn", "char_units": 16, "dropout": 0.2,
                      "learning_rate": 3e-3}
    demo_inputs = {"text": ["Angela Merkel met Emmanuel Macron in Paris on Monday .",
                            "Shares of Siemens rose 3 percent in Frankfurt ."]}

    def load_splits(self, config, evaluation=False):
        return sources.load("ner", config.data or "synthetic", seed=config.seed,
                            max_examples=config.max_examples, scheme=config.scheme,
                            evaluation=evaluation)

    def fit_preprocessor(self, config, splits):
        # vocab_max_examples (0 = all; take(-1) takes everything) bounds the fitting pass.
        tokens = splits.train.take(config.vocab_max_examples or -1).map(lambda e: e["tokens"])
        words = TokenVocabulary(max_tokens=config.max_tokens, lowercase=config.lowercase)
        chars = CharVocabulary(add_start_end=False)
        words.adapt(tokens)
        chars.adapt(tokens)
        info = splits.info
        return NerPreprocessor(words, chars, LabelLookup(info["tag_names"]),
                               info.get("target_scheme", config.scheme), info["scheme"],
                               config.max_word_length, ner_char_lm.CharLMInputs.fit(config))

    def make_dataset(self, config, preprocessor, split, training):
        def encode(e):
            return preprocessor.features(e["tokens"]), preprocessor.labels(e["tags"])

        ds = (split.filter(lambda e: tf.size(e["tokens"]) > 0)
              .map(encode, num_parallel_calls=tf.data.AUTOTUNE))
        ds = batching.cached(ds, batching.cache_target(split, config.cache, config))
        if training:
            ds = ds.shuffle(10000, seed=config.seed, reshuffle_each_iteration=True)
            if config.singleton_unk > 0:
                singleton = tf.constant(singleton_ids(preprocessor, split))
                rate, seed = float(config.singleton_unk), config.seed

                def unk(x, y):  # after the cache, so each epoch draws afresh
                    return {**x, "word_ids": replace_singletons(
                        x["word_ids"], singleton, rate, seed)}, y
                ds = ds.map(unk, num_parallel_calls=tf.data.AUTOTUNE)
        ds, _ = batching.bucket_batch(ds, config.batch_size,
                                      length_fn=lambda x, y: tf.shape(y)[0])
        return ds.prefetch(tf.data.AUTOTUNE)

    def build_model(self, config, preprocessor):
        matrix, word_dim = None, config.embedding_dim
        if config.embeddings:
            matrix, report = load_word_vectors(config.embeddings,
                                               preprocessor.words.get_vocabulary())
            print(format_coverage(report))
            word_dim = matrix.shape[1]
        return build_tagger_model(
            preprocessor.words.vocabulary_size, preprocessor.chars.vocabulary_size,
            len(preprocessor.tag_names), word_dim=word_dim, char_dim=config.char_dim,
            char_encoder=config.char_encoder, char_units=config.char_units,
            casing_dim=config.casing_dim, cell=config.cell, units=config.units,
            num_layers=config.num_layers, dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout, crf=config.crf,
            tag_names=preprocessor.tag_names, scheme=preprocessor.scheme,
            pretrained_embeddings=matrix,
            char_lm_layers=ner_char_lm.feature_layers(config, preprocessor.char_lm))

    def compile_kwargs(self, config):
        metrics = [TagF1(outside_id=0), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        # The CRF model computes its negative log-likelihood itself (models.layers.crf.CRFModel).
        loss = None if config.crf else "sparse_categorical_crossentropy"
        return {"loss": loss, "metrics": metrics}

    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        tagger = SplitTagger(preprocessor, split, config.batch_size, config.document_context)
        return self._score(tagger(model), preprocessor.input_scheme, config.document_context)

    def epoch_metrics(self, config, preprocessor, split):
        """``val_entity_f1`` (seqeval strict, with document context where the split has
        documents) after every epoch: the checkpoint, early stopping and the tuner select on
        the metric that is reported, not on a token-level proxy."""
        tagger = SplitTagger(preprocessor, split, config.batch_size, config.document_context)

        def evaluate(model):
            metrics = self._score(tagger(model), preprocessor.input_scheme,
                                  config.document_context)
            out = {"entity_f1": metrics["f1"]}
            if "sentence_f1" in metrics:
                out["sentence_entity_f1"] = metrics["sentence_f1"]
            return out
        return evaluate

    @staticmethod
    def _score(tagged, scheme, weight):
        gold, sentence, document = tagged
        if document is None:
            return {**entity_metrics(gold, sentence, scheme), "scheme": scheme}
        level = entity_metrics(gold, sentence, scheme)
        return {**entity_metrics(gold, document, scheme), "scheme": scheme,
                "document_context": weight,
                **{f"sentence_{k}": level[k] for k in ("f1", "precision", "recall")}}

    def print_metrics(self, metrics):
        print(f"  entity F1 {metrics['f1']:.4f}  precision {metrics['precision']:.4f}  "
              f"recall {metrics['recall']:.4f}  token accuracy {metrics['token_accuracy']:.4f}"
              f"  ({metrics['entities']} entities, {metrics['examples']} sentences, seqeval "
              f"strict, {metrics.get('scheme', '')})")
        if "sentence_f1" in metrics:
            print(f"  (with document context {metrics['document_context']:g}; sentence by "
                  f"sentence: F1 {metrics['sentence_f1']:.4f}  precision "
                  f"{metrics['sentence_precision']:.4f}  recall {metrics['sentence_recall']:.4f})")
        rows = sorted(metrics.get("per_type", {}).items())
        width = max([8] + [len(kind) + 2 for kind, _ in rows])
        print(f"  {'type':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for kind, row in rows:
            print(f"  {kind:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                  f"{row['f1']:>10.4f}{row['support']:>9}")

    def serving_module(self, config, model, preprocessor):
        return NerServing(model, preprocessor, config.document_context,
                          max_text_tokens=config.max_text_tokens, max_batch=config.max_batch)

    def warmup_inputs(self, config):
        return {"text": np.array(self.demo_inputs["text"], dtype=object)}

    def warmup_requests(self, config):
        inputs = self.warmup_inputs(config)
        return {"serving_default": inputs, "tag_document": inputs}

    def show_predictions(self, config, request, inputs, outputs):
        texts = [t.decode("utf-8") for t in np.asarray(inputs["text"].numpy()).tolist()]
        results = []
        for i, text in enumerate(texts):
            n = int(outputs["lengths"].numpy()[i])
            tokens = [t.decode("utf-8") for t in outputs["tokens"].numpy()[i, :n]]
            tags = [t.decode("utf-8") for t in outputs["tags"].numpy()[i, :n]]
            spans = spans_with_offsets(text, tokens, tags)
            results.append({"text": text, "tokens": tokens, "tags": tags, "entities": spans})
            if not request.json:
                print(self.format_prediction(config, results[-1]))
        return results

    def empty_result(self, config, text):
        return {"text": text, "tokens": [], "tags": [], "entities": [], "empty": True}

    def format_prediction(self, config, result):
        return "\n".join([highlight(result["text"], result["entities"])] + [
            "  " + json.dumps(span, ensure_ascii=False) for span in result["entities"]])

    def search_space(self, hp):
        return {
            "crf": hp.Boolean("crf", default=True),
            "char_encoder": hp.Choice("char_encoder", ["lstm", "cnn"]),
            "cell": hp.Choice("cell", ["lstm", "peephole_lstm", "gru"]),
            "units": hp.Choice("units", [64, 100, 200]),
            "dropout": hp.Float("dropout", 0.2, 0.5, step=0.1),
            "learning_rate": hp.Float("learning_rate", 5e-4, 5e-3, sampling="log"),
        }


if __name__ == "__main__":
    raise SystemExit(main(NerTask()))
