"""Sentiment classification: review text -> label (IMDB by default).

    python -m tasks.sentiment train --epochs 1 --max-examples 2000
    python -m tasks.sentiment predict "a wonderful film"
    python -m tasks.sentiment export
    python -m tasks.sentiment train --set pretrained=runs/lm   # ULMFiT: tasks.sentiment_pretrained

Reads top-down: config -> data -> preprocessing -> model -> metrics -> serving -> search space.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from models.classifier import POOLINGS, build_sequence_classifier
from pipelines import batching, sources
from pipelines.vocab import LabelLookup, WordVectorizer
from tasks import (
    sentiment_data,  # noqa: F401 (registers the task's data sources)
    sentiment_pretrained,  # fine-tuning from a language model run (ULMFiT)
)
from tasks.runner import registry
from tasks.runner.cli import main
from tasks.runner.config import TaskConfig
from tasks.runner.task import Preprocessor, Task
from tasks.serving_limits import CHARS_PER_WORD, check_batch, keep_chars, valid_utf8


# ---- config -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SentimentConfig(TaskConfig):
    data: str = "imdb"
    max_tokens: int = 20000        # word vocabulary cap (ids 0 = pad, 1 = OOV included)
    max_length: int = 400          # reviews are truncated to their first max_length tokens
    embedding_dim: int = 128
    units: int = 64
    pooling: str = "max"           # max|mean|max_mean|last
    dropout: float = 0.3
    patience: int = 2
    # -- fine-tuning a pretrained language model (tasks.sentiment_pretrained) --
    pretrained: str = ""           # a language_model run dir; "" = train from scratch
    lm_finetune_epochs: int = 0    # LM epochs on the training texts first
    unfreeze: str = "gradual"      # gradual|all|none (none: only the head trains)
    discriminative_lr: float = 2.6  # lr divided by this per layer group going down
    unfreeze_steps: int = 0        # >0: gradual unfreezing by steps, not epochs

    def check(self, checks):
        super().check(checks)
        checks.at_least(3, "max_tokens")  # padding, [UNK] and one word
        checks.at_least(1, "max_length")
        checks.one_of(pooling=POOLINGS)
        sentiment_pretrained.check_config(checks, self)  # fine-tuning


# ---- preprocessing ------------------------------------------------------------------------
class SentimentPreprocessor(Preprocessor):
    """Word vocabulary fitted on the training reviews plus the class names (a label lookup):
    ``token_ids`` and ``label_names`` run in tf.data and in the serving graph alike."""

    def __init__(self, vectorizer: WordVectorizer, class_names: list[str]):
        super().__init__()
        self.vectorizer = vectorizer
        self.labels = LabelLookup(class_names)

    @property
    def class_names(self) -> list[str]:
        return self.labels.get_vocabulary()

    def save(self, assets_dir: str) -> None:
        self.vectorizer.save(os.path.join(assets_dir, "words"))
        with open(os.path.join(assets_dir, "class_names.json"), "w", encoding="utf-8") as f:
            json.dump(self.class_names, f)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "SentimentPreprocessor":
        with open(os.path.join(assets_dir, "class_names.json"), encoding="utf-8") as f:
            class_names = json.load(f)
        return cls(WordVectorizer.load(os.path.join(assets_dir, "words")), class_names)

    def label_names(self, class_ids):
        """int [...] -> the class names, string [...]."""
        return self.labels.decode(class_ids)

    def token_ids(self, texts, max_length: int, ragged: bool = False):
        """texts: string [batch] -> int32 [batch, <=max_length].

        Dense output is 0-padded and has one column at least (an RNN needs one timestep; an
        all-padding row is masked out entirely). ``ragged=True`` keeps each row's exact length,
        for ``unbatch`` before bucketing.
        """
        ids = tf.cast(self.vectorizer(texts, ragged=ragged), tf.int32)[:, :max_length]
        if ragged:
            return ids
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])


# ---- serving ------------------------------------------------------------------------------
class SentimentServing(tf.Module):
    """``serving_default(text: string [batch])`` -> label, probabilities, class_id.

    Limits (:mod:`tasks.serving_limits`): at most ``max_batch`` texts (else
    ``InvalidArgumentError`` naming ``text``); a review is read up to its first ``max_length``
    words, and before it is split, up to its first ``CHARS_PER_WORD * max_length`` characters
    (so one huge text cannot widen the batch's dense word tensor); invalid UTF-8 -> U+FFFD."""

    def __init__(self, model, preprocessor: SentimentPreprocessor, max_length: int,
                 max_batch: int):
        super().__init__()
        self.model = model
        self.preprocessor = preprocessor  # its vocabulary and label tables, tracked once
        self.max_length, self.max_batch = int(max_length), int(max_batch)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(self, text):
        text = valid_utf8(check_batch(text, self.max_batch, "text"))
        text, _ = keep_chars(text, CHARS_PER_WORD * self.max_length)
        probabilities = _class_probabilities(
            self.model(self.preprocessor.token_ids(text, self.max_length), training=False))
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"label": self.preprocessor.label_names(class_id),
                "probabilities": probabilities, "class_id": class_id}


def _class_probabilities(outputs):
    """Model outputs -> float32 [batch, num_classes], whatever the compute policy."""
    return tf.cast(outputs, tf.float32)


# ---- the task -------------------------------------------------------------------------------
@registry.register
class SentimentTask(Task):
    """Sentiment classification with a stacked bidirectional RNN."""

    name = "sentiment"
    order = 10  # position in task listings and `make demo`
    config_class = SentimentConfig
    preprocessor_class = SentimentPreprocessor
    serving_class = SentimentServing
    monitor = "accuracy"
    monitor_mode = "max"
    demo_overrides = {"max_examples": 4000, "epochs": 2, "max_tokens": 8000, "max_length": 150,
                      "embedding_dim": 32, "units": 32, "learning_rate": 3e-3}
    demo_inputs = {"text": ["A wonderful film, moving and beautifully acted.",
                            "Dull, predictable and far too long."]}

    def load_splits(self, config, evaluation=False):
        return sources.load("sentiment", config.data or "imdb", seed=config.seed,
                            max_examples=config.max_examples, evaluation=evaluation)

    # fine-tuning: with `pretrained`, the hooks below hand over to tasks.sentiment_pretrained.
    @property
    def _pretrained(self):
        if "_pretrained_support" not in self.__dict__:
            self._pretrained_support = sentiment_pretrained.PretrainedSupport()
        return self._pretrained_support

    def load_preprocessor(self, config, assets_dir):
        if config.pretrained:  # fine-tuning
            return sentiment_pretrained.PretrainedSentimentPreprocessor.load(
                assets_dir).track_assets(assets_dir)
        return super().load_preprocessor(config, assets_dir)

    def fit_preprocessor(self, config, splits):
        if config.pretrained:  # fine-tuning
            return self._pretrained.fit_preprocessor(config, splits)
        vectorizer = WordVectorizer(max_tokens=config.max_tokens)
        texts = splits.train.map(lambda e: e["text"])
        # One streamed pass; vocab_max_examples bounds it for very large corpora.
        vectorizer.adapt(texts.take(config.vocab_max_examples) if config.vocab_max_examples
                         else texts)
        return SentimentPreprocessor(vectorizer, splits.info["class_names"])

    def make_dataset(self, config, preprocessor, split, training):
        def encode(texts, labels):
            return preprocessor.token_ids(texts, config.max_length, ragged=True), labels

        def at_least_one_step(ids, label):
            return tf.pad(ids, [[0, tf.maximum(0, 1 - tf.shape(ids)[0])]]), label

        ds = split.map(lambda e: (e["text"], e["label"]))
        # Vectorise in batches of 256 (one lookup call each), once when cached: in memory for
        # in-memory sources, on disk with --set cache=DIR, else (streamed) each epoch.
        ds = (ds.batch(256).map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
              .map(at_least_one_step))
        ds = batching.cached(ds, batching.cache_target(split, config.cache, config))
        if training:
            ds = ds.shuffle(8192, seed=config.seed, reshuffle_each_iteration=True)
        # Bucketing by length pads far fewer tokens than padding every batch to max_length.
        ds, _ = batching.bucket_batch(ds, config.batch_size,
                                      length_fn=lambda ids, label: tf.shape(ids)[0])
        return ds.prefetch(tf.data.AUTOTUNE)

    def build_model(self, config, preprocessor):
        if config.pretrained:  # fine-tuning
            return self._pretrained.build_model(config, preprocessor)
        return build_sequence_classifier(
            preprocessor.vectorizer.vocabulary_size, len(preprocessor.class_names),
            embedding_dim=config.embedding_dim, units=config.units,
            num_layers=config.num_layers, cell=config.cell, dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout, pooling=config.pooling)

    def make_optimizer(self, config, **kwargs):
        if config.pretrained:  # fine-tuning: per-layer-group learning rates
            return self._pretrained.optimizer(config, **kwargs)
        return super().make_optimizer(config, **kwargs)

    def training_callbacks(self, config, run_dir):
        if config.pretrained:  # fine-tuning: gradual unfreezing
            return self._pretrained.callbacks(config, run_dir)
        return super().training_callbacks(config, run_dir)

    def compile_kwargs(self, config):
        return {"loss": "sparse_categorical_crossentropy",
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        """Accuracy, precision, recall, F1 (of the positive class / macro), AUC, confusion PNG."""
        # Compiled once for all bucket shapes; eager RNN calls would loop in Python per step.
        predict = tf.function(lambda ids: _class_probabilities(model(ids, training=False)),
                              reduce_retracing=True)
        y_true, probs = [], []
        for ids, labels in self.make_dataset(config, preprocessor, split, training=False):
            probs.append(predict(ids).numpy())
            y_true.append(labels.numpy())
        y_true, probs = np.concatenate(y_true), np.concatenate(probs)
        metrics = classification_metrics(y_true, probs, preprocessor.class_names)
        if plots_dir:
            from tasks.runner import plots

            plots.confusion_matrix(metrics.pop("confusion_matrix"), preprocessor.class_names,
                                   plots_dir)
        return metrics

    def serving_module(self, config, model, preprocessor):
        return SentimentServing(model, preprocessor, config.max_length, config.max_batch)

    def warmup_inputs(self, config):
        return {"text": np.array(self.demo_inputs["text"], dtype=object)}

    def show_predictions(self, config, request, inputs, outputs):
        texts = [t.decode("utf-8") for t in np.asarray(inputs["text"].numpy()).tolist()]
        labels = [x.decode("utf-8") for x in outputs["label"].numpy().tolist()]
        probs = outputs["probabilities"].numpy()
        results = []
        for text, label, p in zip(texts, labels, probs):
            results.append({"text": text, "label": label, "probability": float(p.max()),
                            "probabilities": [float(x) for x in p]})
            if not request.json:
                print(self.format_prediction(config, results[-1]))
        return results

    def empty_result(self, config, text):
        return {"text": text, "label": None, "probability": None, "probabilities": None,
                "empty": True}

    def format_prediction(self, config, result):
        return f"{result['label']:>10}  {result['probability']:.3f}  {result['text']}"

    def search_space(self, hp):
        return {
            "cell": hp.Choice("cell", ["lstm", "gru", "peephole_lstm"]),
            "units": hp.Choice("units", [32, 64, 128]),
            "num_layers": hp.Int("num_layers", 1, 2),
            "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
            "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
            "embedding_dim": hp.Choice("embedding_dim", [64, 128]),
            "pooling": hp.Choice("pooling", ["max", "max_mean", "last"]),
        }

    def tuning_space(self, config, hp):
        if config.pretrained:  # fine-tuning: the sizes, cell and pooling come from the LM
            return sentiment_pretrained.search_space(hp)
        return super().tuning_space(config, hp)

    def tuning_callbacks(self, config, trial_dir):
        if config.pretrained:  # fine-tuning: each trial unfreezes as train does
            return self._pretrained.callbacks(config, trial_dir)
        return super().tuning_callbacks(config, trial_dir)


def classification_metrics(y_true, probabilities, class_names) -> dict:
    """Accuracy, precision/recall/F1 (binary: of class 1; else macro), AUC, confusion matrix.

    Args:
        y_true: int [n].
        probabilities: float [n, num_classes].
    """
    num_classes = len(class_names)
    y_pred = probabilities.argmax(axis=-1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    tp = np.diag(matrix).astype(float)
    precision = tp / np.maximum(matrix.sum(axis=0), 1)
    recall = tp / np.maximum(matrix.sum(axis=1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    pick = (lambda v: float(v[1])) if num_classes == 2 else (lambda v: float(v.mean()))
    auc = keras.metrics.AUC()
    if num_classes == 2:
        auc.update_state(y_true, probabilities[:, 1])
    else:
        auc = keras.metrics.AUC(multi_label=True, num_labels=num_classes)
        auc.update_state(np.eye(num_classes)[y_true], probabilities)
    return {"accuracy": float((y_true == y_pred).mean()), "precision": pick(precision),
            "recall": pick(recall), "f1": pick(f1), "auc": float(auc.result()),
            "examples": int(len(y_true)), "confusion_matrix": matrix.tolist()}


if __name__ == "__main__":
    raise SystemExit(main(SentimentTask()))
