"""Sequence to sequence: human-readable dates -> ISO dates, or sentence translation.

    python -m tasks.seq2seq train --epochs 10                    # dates, >= 20 locales
    python -m tasks.seq2seq train --data pairs:spa.txt --set max_length=10 --set lowercase=true
    python -m tasks.seq2seq predict "14 juillet 1789" --plot-attention attention.png
    python -m tasks.seq2seq export

Reads top-down: config -> preprocessing -> the task (data, model, metrics, predictions, search
space) -> metric helpers. Serving (in-graph beam / greedy decoding, request limits):
:mod:`tasks.seq2seq_serving`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from models.losses import SparseSmoothedCrossentropy
from models.seq2seq import ATTENTIONS, build_seq2seq_model
from pipelines import batching, sources
from pipelines.token_batching import token_bucket_batch
from pipelines.vocab import END_ID, START_ID, CharVocabulary, WordVectorizer
from tasks import (
    seq2seq_data,  # noqa: F401 (registers the task's data sources)
    seq2seq_eval,
    seq2seq_units,
)
from tasks.runner import registry
from tasks.runner.averaging import AverageLastCheckpoints
from tasks.runner.cli import main
from tasks.runner.config import TaskConfig
from tasks.runner.task import Preprocessor, Task
from tasks.seq2seq_eval import attention_heatmap, sequence_metrics  # noqa: F401 (API)
from tasks.seq2seq_serving import Seq2SeqServing, max_decode_length  # noqa: F401 (API)

DATES = "dates"
UNITS = ("auto", "char", "word", "subword")


# ---- config -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig(TaskConfig):
    data: str = DATES              # dates | pairs:PATH | a TSV path
    locales: tuple[str, ...] = ()  # dates: babel locales ("" = the reader's >= 20 default)
    num_examples: int = 0          # dates: training pairs to generate (0 = reader default)
    lowercase: bool = False        # pairs: lowercase both sides
    max_length: int = 0            # pairs: drop pairs longer than this many words (0 = keep)
    reverse: bool = False          # pairs: swap source and target
    unit: str = "auto"             # char|word|subword|auto (char for dates, word for pairs)
    max_tokens: int = 20000        # word vocabulary cap per side (reserved ids included)
    embedding_dim: int = 64
    units: int = 128
    decoder_layers: int = 1
    attention: str = "luong"       # luong|bahdanau
    dropout: float = 0.1
    batch_size: int = 64
    beam_width: int = 4
    length_penalty: float = 0.0    # GNMT alpha; 0 ranks by the model's log-probability
    max_decode_length: int = 0     # 0 = 1.5 x the longest training target + 2
    max_source_length: int = 500   # serving: source tokens read (more: cut, `truncated`)
    eval_batch_size: int = 256
    # unit=subword (tasks.seq2seq_units): SentencePiece trained on the train split
    vocab_size: int = 8000         # pieces per model, 4 reserved + 256 byte pieces included
    shared_vocab: bool = False     # one model for both sides (else one per side)
    subword_model: str = "unigram"  # unigram|bpe
    label_smoothing: float = 0.0   # eps of models.losses.SparseSmoothedCrossentropy
    average_last: int = 0          # >= 2: final model = mean of the last K epochs' weights
    batch_tokens: int = 0          # > 0: batches of <= this many tokens (rows x padded length)
    tie_embeddings: bool = False   # output layer = target embedding^T after a projection
    encoder_residual: bool = False  # encoder layers 2..num_layers add their input (>= 2 layers)
    share_embeddings: bool = False  # subword + shared_vocab: one embedding matrix, both sides

    def check(self, checks):
        super().check(checks)
        checks.at_least(0, "num_examples", "max_length", "max_decode_length", "length_penalty")
        checks.at_least(1, "decoder_layers", "beam_width", "eval_batch_size",
                        "max_source_length")
        checks.at_least(3, "max_tokens")  # padding, [UNK] and one word
        checks.one_of(unit=UNITS, attention=ATTENTIONS)
        seq2seq_units.check_config(self, checks)
        checks.fraction("label_smoothing")
        checks.at_least(0, "batch_tokens")
        checks.require("average_last", self.average_last == 0 or self.average_last >= 2,
                       "0 (off) or >= 2")


def _unit(config) -> str:
    if config.unit not in UNITS:
        raise ValueError(f"unit must be auto, char, word or subword; got {config.unit!r}")
    if config.unit != "auto":
        return config.unit
    return "char" if (config.data or DATES) == DATES else "word"


# ---- preprocessing ------------------------------------------------------------------------
class Seq2SeqPreprocessor(Preprocessor):
    """Source and target vocabularies (characters or words) and the decoding length."""

    def __init__(self, source_vocab, target_vocab, unit: str, max_target_length: int):
        super().__init__()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.unit, self.max_target_length = unit, int(max_target_length)

    @classmethod
    def fit(cls, config, train: tf.data.Dataset) -> "Seq2SeqPreprocessor":
        unit = _unit(config)
        if unit == "subword":  # trained, not adapted: tasks.seq2seq_units
            source, target = seq2seq_units.fit_subword(config, train)
        elif unit == "char":
            source = CharVocabulary(lowercase=config.lowercase, add_start_end=False)
            target = CharVocabulary(lowercase=config.lowercase, add_start_end=True)
        else:
            standardize = "lower" if config.lowercase else None
            source = WordVectorizer(config.max_tokens, standardize=standardize,
                                    split="punctuation")
            target = WordVectorizer(config.max_tokens, standardize=standardize,
                                    split="punctuation", add_start_end=True)
        if unit != "subword":
            source.adapt(train.map(lambda e: e["source"]))
            target.adapt(train.map(lambda e: e["target"]))
        pre = cls(source, target, unit, 1)
        lengths = train.batch(512).map(lambda e: pre.target_ids(e["target"]).row_lengths())
        pre.max_target_length = int(max(int(tf.reduce_max(x)) for x in lengths)) + 1  # + END
        return pre

    def save(self, assets_dir: str) -> None:
        if self.unit == "subword":
            seq2seq_units.save_subword(self.source_vocab, self.target_vocab, assets_dir)
        else:
            self.source_vocab.save(assets_dir, "source")
            self.target_vocab.save(assets_dir, "target")
        with open(os.path.join(assets_dir, "seq2seq.json"), "w", encoding="utf-8") as f:
            json.dump({"unit": self.unit, "max_target_length": self.max_target_length}, f)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "Seq2SeqPreprocessor":
        with open(os.path.join(assets_dir, "seq2seq.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta["unit"] == "subword":
            return cls(*seq2seq_units.load_subword(assets_dir), meta["unit"],
                       meta["max_target_length"])
        vocab = CharVocabulary if meta["unit"] == "char" else WordVectorizer
        return cls(vocab.load(assets_dir, "source"), vocab.load(assets_dir, "target"),
                   meta["unit"], meta["max_target_length"])

    def source_ids(self, texts, ragged: bool = False):
        """string [batch] -> int32 [batch, time] 0-padded (>= 1 column), or ragged."""
        ids = self._ids(self.source_vocab, texts)
        if ragged:
            return ids
        ids = ids.to_tensor(0)
        # An RNN needs one timestep at least; an empty source is then fully masked.
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def target_ids(self, texts):
        """string [batch] -> ragged int32 [batch, None], without START/END."""
        return self._ids(self.target_vocab, texts)

    def _ids(self, vocab, texts):
        if self.unit == "char":
            return tf.cast(vocab(texts, add_start_end=False, ragged=True), tf.int32)
        return tf.cast(vocab(texts, ragged=True), tf.int32)

    def source_tokens(self, ids):
        """Source ids ``[batch, time]`` -> their tokens (characters or words), "" at padding."""
        return self.source_vocab.tokens(ids)

    def target_tokens(self, ids):
        """Target ids ``[batch, time]`` -> their tokens ("[END]" included), "" at padding."""
        return self.target_vocab.tokens(ids)

    def decode(self, ids):
        """int [batch, time] -> string [batch]: stops at END, drops padding; words are joined
        by spaces, then the spaces the tokenizer put around punctuation are taken out again."""
        text = self.target_vocab.decode(ids)
        if self.unit == "word":
            text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}»…])", r"\1")
            text = tf.strings.regex_replace(text, r"([¿¡(\[{«]) ", r"\1")
            text = tf.strings.regex_replace(text, r" ?(['’]) ?", r"\1")
        return text


# ---- the task -------------------------------------------------------------------------------
@registry.register
class Seq2SeqTask(Task):
    """Attention encoder-decoder with greedy and beam decoding inside the serving graph."""

    name = "seq2seq"
    order = 50  # position in task listings and `make demo`
    config_class = Seq2SeqConfig
    preprocessor_class = Seq2SeqPreprocessor
    serving_class = Seq2SeqServing
    monitor = "accuracy"            # teacher-forced next-token accuracy (padding masked)
    monitor_mode = "max"
    demo_overrides = {"max_examples": 2000, "epochs": 2, "units": 64, "embedding_dim": 32,
                      "learning_rate": 2e-3}
    demo_inputs = {"text": ["14 July 1789", "3 mars 2021", "Mittwoch, 9. November 1989"]}

    def load_splits(self, config, evaluation=False):
        data = config.data or DATES
        if data == DATES:
            options = {"locales": list(config.locales) or None}
            if config.num_examples:
                options["num_examples"] = config.num_examples
        else:
            options = {"lowercase": config.lowercase, "max_length": config.max_length,
                       "reverse": config.reverse}
        return sources.load("seq2seq", data, seed=config.seed, max_examples=config.max_examples,
                            evaluation=evaluation, **options)

    def fit_preprocessor(self, config, splits):
        # vocab_max_examples (0 = all; take(-1) takes everything) bounds the fitting pass.
        return Seq2SeqPreprocessor.fit(config, splits.train.take(config.vocab_max_examples or -1))

    def make_dataset(self, config, preprocessor, split, training):
        def encode(source, target):
            return preprocessor.source_ids(source, ragged=True), preprocessor.target_ids(target)

        ds = split.map(lambda e: (e["source"], e["target"])).batch(256)
        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        # ((source, [START] + target), target + [END]), per example; cached once vectorised.
        ds = ds.map(lambda s, t: batching.teacher_forcing(s, t, START_ID, END_ID))
        ds = batching.cached(ds, batching.cache_target(split, config.cache, config))
        if training:
            ds = ds.shuffle(8192, seed=config.seed, reshuffle_each_iteration=True)
        if config.batch_tokens:  # the padded length is the longer of source and target
            return token_bucket_batch(ds, config.batch_tokens, lambda inputs, labels: tf.maximum(
                tf.shape(inputs[0])[0], tf.shape(labels)[0])).prefetch(tf.data.AUTOTUNE)
        ds, _ = batching.bucket_batch(ds, config.batch_size,
                                      length_fn=lambda inputs, labels: tf.shape(inputs[0])[0])
        return ds.prefetch(tf.data.AUTOTUNE)

    def build_model(self, config, preprocessor):
        return build_seq2seq_model(
            preprocessor.source_vocab.vocabulary_size, preprocessor.target_vocab.vocabulary_size,
            embedding_dim=config.embedding_dim, units=config.units,
            encoder_layers=config.num_layers, decoder_layers=config.decoder_layers,
            cell=config.cell, attention=config.attention, dropout=config.dropout,
            tie_embeddings=config.tie_embeddings, encoder_residual=config.encoder_residual,
            share_embeddings=config.share_embeddings)

    def training_callbacks(self, config, run_dir):
        if config.average_last < 2:
            return []
        return [AverageLastCheckpoints(config.average_last, os.path.join(run_dir, "averaging"),
                                       os.path.join(run_dir, "model.keras"))]

    def compile_kwargs(self, config):
        # The logits carry the target padding mask: Keras drops padded steps from both.
        loss = (SparseSmoothedCrossentropy(config.label_smoothing) if config.label_smoothing
                else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return {"loss": loss,
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        """Teacher-forced loss/accuracy, then greedy and beam decoding side by side, on the
        pairs whose source is not a training source (``removed_train_duplicates``)."""
        split, removed = seq2seq_eval.held_out(self, config, split)
        metrics = super().evaluate(config, model, preprocessor, split)
        if removed is not None:
            metrics["removed_train_duplicates"] = removed
        serving = self.serving_module(config, model, preprocessor)
        # Greedy and beam in one graph: one encoder pass, and beam reuses the greedy result.
        both = tf.function(lambda text: serving.decode_text(text, "both"), autograph=False,
                           input_signature=[tf.TensorSpec([None], tf.string)])
        pairs = list(split.as_numpy_iterator())
        texts = [p["source"].decode("utf-8") for p in pairs]
        references = [p["target"].decode("utf-8") for p in pairs]
        if config.lowercase:
            references = [r.lower() for r in references]
        hyps, log_probs, first = {"greedy": [], "beam": []}, {"greedy": [], "beam": []}, None
        for start in range(0, len(texts), config.eval_batch_size):
            out = both(tf.constant(texts[start:start + config.eval_batch_size]))
            first = first or out["beam"]
            for method in hyps:
                hyps[method] += [h.decode("utf-8") for h in out[method]["translation"].numpy()]
                log_probs[method].append(out[method]["log_prob"].numpy())
        for method in hyps:
            metrics.update({f"{method}_{k}": v for k, v in sequence_metrics(
                hyps[method], references, bleu=preprocessor.unit != "char").items()})
        if texts:
            greedy, beam = (np.concatenate(log_probs[m]) for m in ("greedy", "beam"))
            metrics["beam_minus_greedy_log_prob"] = float(np.mean(beam - greedy))
            metrics["beam_below_greedy"] = int(np.sum(beam < greedy - 1e-4))
        if plots_dir and first is not None:
            attention_heatmap(first, 0, os.path.join(plots_dir, "attention.png"))
        return metrics

    def serving_module(self, config, model, preprocessor):
        return Seq2SeqServing(model, preprocessor, config)

    def warmup_inputs(self, config):
        if (config.data or DATES) == DATES:
            return {"text": np.array(self.demo_inputs["text"], dtype=object)}
        return {"text": np.array(["How are you?", "I like it."], dtype=object)}

    def warmup_requests(self, config):
        inputs = self.warmup_inputs(config)
        return {"serving_default": inputs, "greedy": inputs,
                "translate_nbest": seq2seq_eval.nbest_warmup(inputs)}

    def add_predict_arguments(self, parser):
        parser.add_argument("--plot-attention", metavar="PNG",
                            help="draw the attention heatmap of each input (file, -N suffix "
                                 "for inputs after the first)")

    def show_predictions(self, config, request, inputs, outputs):
        if "translations" in outputs:  # --signature translate_nbest
            return seq2seq_eval.show_nbest(request, inputs, outputs)
        texts = [t.decode("utf-8") for t in np.asarray(inputs["text"].numpy()).tolist()]
        positions = request.input_positions or range(len(texts))
        results = []
        for i, text in enumerate(texts):
            result = {"text": text,
                      "translation": outputs["translation"].numpy()[i].decode("utf-8"),
                      "score": float(outputs["score"].numpy()[i]),
                      "log_prob": float(outputs["log_prob"].numpy()[i])}
            plot = request.option("plot_attention")
            if plot:
                root, ext = os.path.splitext(plot)
                n = positions[i]
                path = plot if n == 0 else f"{root}-{n}{ext or '.png'}"
                result["attention_plot"] = attention_heatmap(outputs, i, path)
            results.append(result)
            if not request.json:
                print(self.format_prediction(config, result))
        return results

    def empty_result(self, config, text):
        return {"text": text, "translation": None, "score": None, "log_prob": None,
                "empty": True}

    def format_prediction(self, config, result):
        return f"{result['text']}  ->  {result['translation']}   (score {result['score']:.3f})"

    def search_space(self, hp):
        return {
            "attention": hp.Choice("attention", ["luong", "bahdanau"]),
            "cell": hp.Choice("cell", ["lstm", "gru", "peephole_lstm"]),
            "units": hp.Choice("units", [64, 128, 256]),
            "num_layers": hp.Int("num_layers", 1, 2),
            "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1),
            "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
        }


if __name__ == "__main__":
    raise SystemExit(main(Seq2SeqTask()))
