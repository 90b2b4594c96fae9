"""Sentiment from a pretrained word language model (ULMFiT, Howard & Ruder 2018).

    python -m tasks.language_model train --data unlabeled.txt --output runs/lm
    python -m tasks.sentiment train --set pretrained=runs/lm --set lm_finetune_epochs=1

``--set pretrained=RUN_DIR`` (a ``language_model`` run, read as its module docstring lists):

1. The preprocessor is the language model's: its vocabulary and tokenisation (same ids,
   lower-cased as it was), copied into this run's ``assets/`` with the class names, so the run
   directory and its export need the language model run no more (except to resume).
2. ``lm_finetune_epochs=N`` > 0: the language model first trains N more epochs on this task's
   training texts (labels unused; BPTT batches of :mod:`tasks.language_model_text`).
3. The classifier (:func:`models.pretrained_encoder.build_pretrained_classifier`) starts from
   the (fine-tuned) language model's embedding and recurrent weights, with concat pooling and
   a new head.
4. Training uses :class:`models.discriminative.DiscriminativeAdam`: layer group ``g`` (0 the
   head, then ``lstm_N`` ... ``lstm_1``, then the embedding) learns at ``lr /
   discriminative_lr**g``. ``unfreeze=gradual``: epoch 1 trains the head only, each later epoch
   one group more; ``all``: everything from epoch 1; ``none``: the head only. Each change of
   the scales is written to ``RUN_DIR/unfreezing.json``. ``unfreeze_steps=N`` > 0 unfreezes one
   group more every N training steps instead of every epoch: a run of few long epochs (many
   labels, or a wall-clock budget that allows one or two epochs) would otherwise spend most of
   its steps training the head alone.

5. ``lr_schedule=slanted_triangular`` (the runner's, :mod:`models.schedules`) shapes the
   classifier's rate (each group's scale multiplies it) and the LM fine-tuning stage's.

Sizes (``embedding_dim``, ``units``, ``num_layers``, ``cell``, ``max_tokens``) come from the
language model; one left at its default is ignored, one set to another value is an error.
``tune`` therefore searches only :func:`search_space` (dropout, learning rate,
``discriminative_lr``), and each trial unfreezes as ``train`` does.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from models import schedules
from models.discriminative import DiscriminativeAdam, group_scales
from models.optimizers import Adam
from models.pretrained_encoder import build_pretrained_classifier, copy_encoder_weights
from models.word_language_model import reset_carried_states
from pipelines.vocab import LabelLookup
from tasks import language_model_text as text_lib
from tasks.runner import run_dir as rd
from tasks.runner.errors import ConfigError, RunDirError
from tasks.runner.task import Preprocessor

LM_TASK = "language_model"
UNFREEZE = ("gradual", "all", "none")
UNFREEZING_FILE = "unfreezing.json"
#: Sentiment config fields that must agree with the language model: sentiment -> LM field.
SIZES = {"embedding_dim": "embedding_dim", "units": "units", "num_layers": "num_layers",
         "cell": "cell"}


class PretrainedRunError(RunDirError, FileNotFoundError):
    """``pretrained`` is missing, is not a language model run, or lacks one of its files."""


class PretrainedSentimentPreprocessor(Preprocessor):
    """The language model's words (a ``WordLMPreprocessor``) plus the class names: the same
    ``token_ids`` / ``label_names`` interface as ``SentimentPreprocessor``, for the task's
    datasets and its unchanged ``SentimentServing``."""

    def __init__(self, words: text_lib.WordLMPreprocessor, class_names: list[str]):
        super().__init__()
        self.words = words
        self.labels = LabelLookup(class_names)

    @property
    def class_names(self) -> list[str]:
        return self.labels.get_vocabulary()

    @property
    def vocabulary_size(self) -> int:
        return self.words.vocabulary_size

    def save(self, assets_dir: str) -> None:
        self.words.save(assets_dir)  # words.vocab.txt, words.json, language_model.json
        with open(os.path.join(assets_dir, "class_names.json"), "w", encoding="utf-8") as f:
            json.dump(self.class_names, f)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "PretrainedSentimentPreprocessor":
        with open(os.path.join(assets_dir, "class_names.json"), encoding="utf-8") as f:
            class_names = json.load(f)
        return cls(text_lib.WordLMPreprocessor.load(assets_dir), class_names)

    def label_names(self, class_ids):
        """int [...] -> the class names, string [...]."""
        return self.labels.decode(class_ids)

    def token_ids(self, texts, max_length: int, ragged: bool = False):
        """texts: string [batch] -> int32 [batch, <=max_length], the language model's ids
        (0-padded, one column at least; ``ragged=True``: exact lengths)."""
        ids = tf.cast(self.words.ids(self.words.tokens(texts)), tf.int32)[:, :max_length]
        if ragged:
            return ids
        dense = ids.to_tensor(0)
        return tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])


def check_config(checks, config) -> None:
    """Field rules of the four fine-tuning settings (SentimentConfig.check calls this)."""
    checks.one_of(unfreeze=UNFREEZE)
    checks.at_least(0, "lm_finetune_epochs", "unfreeze_steps")
    checks.at_least(1, "discriminative_lr")
    checks.require("pretrained", isinstance(config.pretrained, str), "must be a path")


def search_space(hp) -> dict:
    """What ``tune --set pretrained=LM`` searches: the fine-tuning settings only (the sizes,
    cell and vocabulary are the language model's; searching them would contradict it)."""
    return {"dropout": hp.Float("dropout", 0.1, 0.5, step=0.1),
            "learning_rate": hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"),
            "discriminative_lr": hp.Choice("discriminative_lr", [1.0, 2.6, 4.0])}


class LanguageModelRun:
    """A checked ``language_model`` run directory: its config, preprocessor and model."""

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise PretrainedRunError(f"pretrained={path}: no such run directory")
        task = (rd.read_marker(path) or {}).get("task")
        if task != LM_TASK:
            raise PretrainedRunError(
                f"pretrained={path} is not a {LM_TASK} run (its {rd.MARKER} says task="
                f"{task!r}); train one with python -m tasks.language_model train")
        for name in (rd.CONFIG, rd.MODEL, "assets/words.vocab.txt", "assets/words.json",
                     "assets/language_model.json"):
            if not os.path.exists(os.path.join(path, name)):
                raise PretrainedRunError(f"pretrained={path} lacks {name} (an unfinished or "
                                         f"damaged {LM_TASK} run?)")
        from tasks.language_model import LanguageModelTask  # registers the LM's layers

        self.path, self.task = path, LanguageModelTask()
        self.config = rd.load_config(self.task, path)
        self.words = text_lib.WordLMPreprocessor.load(rd.path(path, rd.ASSETS))
        self._model = None

    @property
    def model(self) -> keras.Model:
        if self._model is None:
            self._model = keras.saving.load_model(rd.path(self.path, rd.MODEL), compile=False)
        return self._model

    def check_against(self, config, defaults) -> None:
        """ConfigError naming every sentiment size set to a value the LM contradicts."""
        wrong = [f"{k}={getattr(config, k)!r} (the language model has "
                 f"{getattr(self.config, lm_key)!r})" for k, lm_key in SIZES.items()
                 if getattr(config, k) not in (getattr(defaults, k),
                                               getattr(self.config, lm_key))]
        size = self.words.vocabulary_size
        if config.max_tokens not in (defaults.max_tokens, size):
            wrong.append(f"max_tokens={config.max_tokens} (the language model's vocabulary "
                         f"has {size} ids)")
        if wrong:
            raise ConfigError(f"pretrained={self.path} does not match: {', '.join(wrong)}; "
                              f"leave these at their defaults or set the language model's")


class PretrainedSupport:
    """What ``SentimentTask`` does differently with ``pretrained`` (one per task instance:
    it keeps the loaded, possibly fine-tuned, language model between the runner's hooks)."""

    def __init__(self):
        self.run = None

    def lm_run(self, config) -> LanguageModelRun:
        if self.run is None or self.run.path != config.pretrained:
            self.run = LanguageModelRun(config.pretrained)
            self.run.check_against(config, type(config)())
        return self.run

    def fit_preprocessor(self, config, splits) -> PretrainedSentimentPreprocessor:
        run = self.lm_run(config)
        if config.lm_finetune_epochs:
            finetune_language_model(run, splits.train, config.lm_finetune_epochs,
                                    config.lr_schedule)
        return PretrainedSentimentPreprocessor(run.words, splits.info["class_names"])

    def build_model(self, config, preprocessor) -> keras.Model:
        run = self.lm_run(config)
        lm = run.config
        model = build_pretrained_classifier(
            preprocessor.vocabulary_size, len(preprocessor.class_names),
            embedding_dim=lm.embedding_dim, units=lm.units, num_layers=lm.num_layers,
            cell=lm.cell, dropout=config.dropout, seed=config.seed)
        copy_encoder_weights(model, run.model)
        return model

    def optimizer(self, config, **kwargs) -> DiscriminativeAdam:
        # Groups read from the model's variables at build: evaluate recompiles without the LM.
        return DiscriminativeAdam(None, **kwargs)

    def callbacks(self, config, run_dir: str) -> list:
        return [GradualUnfreezing(config.unfreeze, config.discriminative_lr,
                                  os.path.join(run_dir, UNFREEZING_FILE),
                                  every_steps=config.unfreeze_steps)]


def finetune_language_model(run: LanguageModelRun, texts: tf.data.Dataset, epochs: int,
                            lr_schedule: str = "constant"):
    """Trains ``run.model`` in place for ``epochs`` more epochs on ``texts`` (dicts with
    ``text``), with the language model's own bptt, batch size, learning rate and clipping;
    ``lr_schedule`` (the sentiment run's) shapes that rate over the fine-tuning steps."""
    lm = run.config
    ids = text_lib.encode(run.words, texts)
    # A small task split may hold fewer tokens than batch_size streams of bptt + 1.
    streams = max(1, min(lm.batch_size, (len(ids) - 1) // (lm.bptt + 1)))
    data = text_lib.bptt_batches(ids, streams, lm.bptt, "training split (LM fine-tuning)")
    model = run.model
    rate = schedules.learning_rate(lr_schedule, lm.learning_rate,
                                   epochs * int(data.cardinality()))
    model.compile(optimizer=Adam(learning_rate=rate, clipnorm=lm.clipnorm or None),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    reset = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: reset_carried_states(model))
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=[reset], shuffle=False)
    losses = ", ".join(f"{x:.3f}" for x in history.history["loss"])
    print(f"[sentiment] fine-tuned the language model {epochs} epoch(s) on {len(ids)} tokens "
          f"of the training texts: loss {losses}")
    reset_carried_states(model)


class GradualUnfreezing(keras.callbacks.Callback):
    """Sets :class:`DiscriminativeAdam`'s group scales and appends every change to ``path``
    (``[{"epoch": 1, "unfrozen": 1, "scales": [...], ...}, ...]``).

    Args:
        mode: ``gradual`` | ``all`` | ``none``.
        factor: the discriminative factor (group ``g`` learns at ``lr / factor**g``).
        path: the JSON log.
        every_steps: 0: one group more at each epoch's start (ULMFiT); N > 0: one group more
            every N training steps (counted from the run's first step, so a resumed run
            continues where it was; entries then also carry the ``step``).
    """

    def __init__(self, mode: str, factor: float, path: str, every_steps: int = 0):
        super().__init__()
        self.mode, self.factor, self.path = mode, float(factor), path
        self.every_steps = int(every_steps)
        self._epoch, self._applied, self._step = 0, None, None

    def unfrozen(self, epoch: int, num_groups: int, step: int | None = None) -> int:
        """Groups that train in 0-based ``epoch`` (or at 0-based global ``step`` when
        ``every_steps`` > 0)."""
        if self.mode == "all":
            return num_groups
        if self.mode == "none":
            return 1
        stage = epoch if not self.every_steps or step is None else step // self.every_steps
        return min(num_groups, stage + 1)

    def _optimizer(self) -> DiscriminativeAdam:
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # loss scaling wraps it
        if not isinstance(optimizer, DiscriminativeAdam):
            raise TypeError(f"GradualUnfreezing needs a DiscriminativeAdam, got "
                            f"{type(optimizer).__name__}")
        # Not built here: Keras builds it at the first step (a loss-scaling wrapper builds it
        # again), so the scales wait in it until then.
        optimizer.resolve_groups(self.model.trainable_variables)
        return optimizer

    def _apply(self, epoch: int, step: int | None) -> None:
        optimizer = self._optimizer()
        unfrozen = self.unfrozen(epoch, optimizer.num_groups, step)
        if self._applied == unfrozen:  # by steps: only a change is applied and logged
            return
        self._applied = unfrozen
        scales = group_scales(optimizer.num_groups, unfrozen, self.factor)
        optimizer.set_group_scales(np.asarray(scales, np.float32))
        entries = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                entries = json.load(f)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)  # a trial's
        entry = {"epoch": epoch + 1, "unfrozen": unfrozen, "scales": scales,
                 "groups": optimizer.layer_groups}
        if step is None:
            entries = [e for e in entries if e["epoch"] != epoch + 1]
        else:
            entry["step"] = step
            entries = [e for e in entries if e.get("step", -1) < step]
        entries.append(entry)
        rd.write_json_atomic(self.path, entries)

    def on_train_begin(self, logs=None):
        self._step, self._applied = None, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if not self.every_steps:
            self._applied = None
            self._apply(epoch, None)

    def on_train_batch_begin(self, batch, logs=None):
        if self.every_steps:
            if self._step is None:  # the optimizer's count: a resumed run goes on from it
                self._step = int(keras.ops.convert_to_numpy(self._optimizer().iterations))
            self._apply(self._epoch, self._step)

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step is not None:
            self._step += 1
