"""Character-level generation: a character language model over a stacked RNN (names by default).

    python -m tasks.char_generation train --epochs 5
    python -m tasks.char_generation predict --prompt Ma --num-samples 5 --temperature 0.8
    python -m tasks.char_generation generate --prompt Ma --top-k 5 --seed 1 --num-samples 5
    python -m tasks.char_generation score Mary Xqzt Marta
    python -m tasks.char_generation export
    python -m tasks.char_generation train --data text.txt --set reverse=true  # backward LM

Data: ``names`` (lines: each name is [START] chars [END]; generation stops at [END] and flags
names seen in training), ``shakespeare`` or a text file (continuous: fixed windows over the
concatenated text). Sampling runs in-graph (``models.language_model.generate``): the prompt and
every new character cost one RNN step, never a re-read of the prefix. ``reverse=true`` trains a
right-to-left model (NER's char-LM features use one, :mod:`tasks.ner_char_lm`): its prompts are
a text's end, continued leftward, and ``score`` reads texts right to left.

The serving module and its request limits: :mod:`tasks.char_generation_serving`. Reads
top-down: config -> preprocessing -> metrics -> the task (data, model, CLI).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from models.language_model import build_char_language_model
from pipelines import batching, sources
from pipelines.char_lm import reverse_chars
from pipelines.vocab import END_ID, OOV_ID, PAD_ID, START_ID, CharVocabulary
from tasks import char_generation_data  # noqa: F401 (registers the task's data sources)
from tasks.char_generation_serving import CharGenerationServing
from tasks.generative import GenerativeTask
from tasks.runner import registry
from tasks.runner.cli import main
from tasks.runner.config import TaskConfig
from tasks.runner.errors import InputError
from tasks.runner.task import Preprocessor

MODES = ("lines", "continuous")
# An empty prompt in continuous mode starts after a line break (the text's own separator).
CONTINUOUS_CONTEXT = "\n"


# ---- config -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CharGenerationConfig(TaskConfig):
    data: str = "names"
    mode: str = ""                 # text files only: lines|continuous ("" = the source's own)
    sequence_length: int = 100     # window length (continuous) / longest name + 1 (lines)
    max_chars: int = 0             # vocabulary cap incl. reserved ids (0 = no cap)
    lowercase: bool = False
    embedding_dim: int = 32
    units: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    max_generate_length: int = 2000  # served `length` is clipped to this
    max_prompt_length: int = 1000  # serving: a prompt's last characters fed (more: `truncated`)
    max_score_length: int = 10000  # serving: `score` reads a text's first characters
    top_k: int = 0                 # used by serving_default; the `generate` signature takes its own
    top_p: float = 1.0
    # A backward (right-to-left) LM: every text is reversed before encoding; serving reverses
    # the prompt and the output back, so a prompt is the END of the text it continues leftward.
    # The backward half of NER's char-LM features (tasks.ner_char_lm).
    reverse: bool = False

    def check(self, checks):
        super().check(checks)
        checks.one_of(mode=("",) + MODES)
        checks.at_least(1, "sequence_length", "max_generate_length", "max_prompt_length",
                        "max_score_length")
        checks.at_least(0, "top_k")
        checks.require("max_chars", self.max_chars == 0 or self.max_chars >= 5,
                       "must be 0 (no cap) or >= 5: 4 reserved ids and one character")
        checks.require("top_p", 0 < self.top_p <= 1, "must be in (0, 1]")


# ---- preprocessing ------------------------------------------------------------------------
class CharPreprocessor(Preprocessor):
    """Character vocabulary (with [START]/[END]), the data mode, the training lines (a
    lookup table: ``seen_in_training``) and the reading direction (``reverse``: right to
    left)."""

    def __init__(self, vocab: CharVocabulary, mode: str, seen: list[str], reverse=False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.vocab, self.mode = vocab, mode
        self.seen = self._no_dependency(list(seen))  # plain strings, not tracked state
        self.reverse = bool(reverse)
        # seen_in_training: 1 seen / 0 new for lines; -1 (not applicable) for continuous text.
        lines = mode == "lines"
        keys = (self.seen if lines else []) or [""]  # a table needs >= 1 key
        self.seen_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.fill([len(keys)], 1 if lines else -1)),
            default_value=0 if lines else -1)

    def oriented(self, texts):
        """string [batch] or []: the texts in the order the model reads them."""
        return reverse_chars(texts) if self.reverse else texts

    def save(self, assets_dir: str) -> None:
        self.vocab.save(assets_dir, "chars")
        with open(os.path.join(assets_dir, "char_generation.json"), "w", encoding="utf-8") as f:
            json.dump({"mode": self.mode, "seen": self.seen, "reverse": self.reverse}, f,
                      ensure_ascii=False)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "CharPreprocessor":
        with open(os.path.join(assets_dir, "char_generation.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return cls(CharVocabulary.load(assets_dir, "chars"), meta["mode"], meta["seen"],
                   meta.get("reverse", False))

    @property
    def end_id(self) -> int | None:
        """The id that ends a generated line (None: continuous text never ends)."""
        return END_ID if self.mode == "lines" else None

    def seen_in_training(self, texts):
        """string [batch] -> int32 [batch]: 1 a training line, 0 new (lines); -1 (continuous)."""
        return self.seen_table.lookup(texts)

    def decode(self, ids):
        """int [batch, time] -> string [batch]: the characters, up to [END]."""
        return self.vocab.decode(ids)

    @property
    def forbidden_ids(self) -> tuple:
        # Continuous text never contains [START]/[END]; lines may end but never restart.
        return (PAD_ID, OOV_ID, START_ID) + (() if self.mode == "lines" else (END_ID,))

    def context_ids(self, prompts):
        """string [batch] -> int32 [batch, time] right-padded, >= 1 id per row."""
        prompts = self.oriented(prompts)
        if self.mode == "lines":
            ids = self.vocab(prompts, add_start_end=False)
            start = tf.fill([tf.shape(ids)[0], 1], START_ID)
            return tf.concat([start, ids], axis=1)
        empty = tf.equal(tf.strings.length(prompts), 0)
        return self.vocab(tf.where(empty, CONTINUOUS_CONTEXT, prompts), add_start_end=False)

    def scored_ids(self, texts):
        """string [batch] -> ids whose first column is context and the rest are scored."""
        texts = self.oriented(texts)
        if self.mode == "lines":
            return self.vocab(texts, add_start_end=True)
        return self.vocab(tf.strings.join([CONTINUOUS_CONTEXT, texts]), add_start_end=False)


# ---- metrics ------------------------------------------------------------------------------
def nats_metrics(total_nll: float, count: int) -> dict:
    """Mean NLL per character in nats and bits, and perplexity."""
    nats = total_nll / max(count, 1)
    return {"loss": nats, "nats_per_char": nats, "bits_per_char": nats / math.log(2),
            "perplexity": math.exp(min(nats, 50.0)), "characters": int(count)}


#: At most this many training lines are kept as "seen" names (novelty of generated names).
SEEN_MAX = 200_000


# ---- the task -------------------------------------------------------------------------------
@registry.register
class CharGenerationTask(GenerativeTask):
    """Character-level language model and generator."""

    name = "char_generation"
    order = 30  # position in task listings and `make demo`
    config_class = CharGenerationConfig
    preprocessor_class = CharPreprocessor
    serving_class = CharGenerationServing
    sampled_unit, generate_takes_inputs, scores_texts = "character", True, True
    demo_overrides = {"epochs": 3, "units": 64, "num_layers": 1, "embedding_dim": 16}
    demo_inputs = {"prompt": ["Ma", "Jo", ""], "length": 20, "temperature": 0.8}

    def load_splits(self, config, evaluation=False):
        options = {"mode": config.mode} if config.mode else {}
        return sources.load("char_generation", config.data or "names", seed=config.seed,
                            max_examples=config.max_examples, evaluation=evaluation, **options)

    def fit_preprocessor(self, config, splits):
        mode = splits.info["mode"]
        vocab = CharVocabulary(max_chars=config.max_chars or None, lowercase=config.lowercase,
                               add_start_end=True)
        texts = splits.train.map(lambda e: e["text"])
        if config.vocab_max_examples:  # one streamed pass over at most this many examples
            texts = texts.take(config.vocab_max_examples)
        if mode == "continuous":
            texts = texts.map(lambda t: tf.strings.join([t, CONTINUOUS_CONTEXT]))
        vocab.adapt(texts)
        # Names "seen" in training (for the novelty of generated ones); bounded, so a huge
        # lines file is not copied into memory.
        seen = [t.decode("utf-8") for t in splits.train.map(lambda e: e["text"])
                .take(SEEN_MAX).as_numpy_iterator()] if mode == "lines" else []
        return CharPreprocessor(vocab, mode, seen, reverse=config.reverse)

    def make_dataset(self, config, preprocessor, split, training):
        vocab, width = preprocessor.vocab, config.sequence_length + 1
        cache = batching.cache_target(split, config.cache, config)
        if preprocessor.mode == "lines":
            # One name per example: [START] chars [END], inputs/targets shifted by one.
            def shifted(e):
                ids = vocab(preprocessor.oriented(e["text"]), add_start_end=True)[:width]
                return ids[:-1], ids[1:]

            ds = split.map(shifted)
            ds = batching.finalize(ds, shuffle_buffer=10_000 if training else 0, seed=config.seed,
                                   cache=cache, prefetch=False)
            ds, _ = batching.bucket_batch(ds, config.batch_size,
                                          lambda x, y: tf.shape(x)[0], num_buckets=4)
        else:
            ds = split.map(lambda e: vocab(tf.strings.join(
                [preprocessor.oriented(e["text"]), CONTINUOUS_CONTEXT]), add_start_end=False))
            ds = batching.lm_windows(ds, config.sequence_length)
            ds = batching.finalize(ds, shuffle_buffer=10_000 if training else 0, seed=config.seed,
                                   cache=cache, prefetch=False)
            ds = ds.batch(config.batch_size, drop_remainder=training)
        return ds.prefetch(tf.data.AUTOTUNE)

    def build_model(self, config, preprocessor):
        return build_char_language_model(
            preprocessor.vocab.vocabulary_size, embedding_dim=config.embedding_dim,
            units=config.units, num_layers=config.num_layers, cell=config.cell,
            dropout=config.dropout, recurrent_dropout=config.recurrent_dropout)

    def compile_kwargs(self, config):
        # ignore_class=0: padded targets of short names do not count.
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                   ignore_class=PAD_ID)}

    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        """Exact validation NLL: summed over every non-padding target character."""
        total, count = 0.0, 0
        for inputs, targets in self.make_dataset(config, preprocessor, split, training=False):
            log_probs = tf.nn.log_softmax(tf.cast(model(inputs, training=False), tf.float32))
            picked = tf.gather(log_probs, targets, batch_dims=2)
            scored = tf.not_equal(targets, PAD_ID)
            total -= float(tf.reduce_sum(tf.where(scored, picked, 0.0)))
            count += int(tf.reduce_sum(tf.cast(scored, tf.int32)))
        return {**nats_metrics(total, count), "examples": int(sum(1 for _ in split))}

    def serving_module(self, config, model, preprocessor):
        # The task keeps the module alive: a tf.function method only holds a weak reference
        # to it, and the runner keeps just `module.serving_default`.
        self._serving = CharGenerationServing(model, preprocessor, config)
        return self._serving

    def warmup_inputs(self, config):
        # Greedy, so the fresh-process validation can compare texts exactly.
        prompts = ["Ma", ""] if (config.data or "names") == "names" else ["The ", ""]
        return {"prompt": np.array(prompts, dtype=object), "length": np.int32(16),
                "temperature": np.float32(0.0)}

    def warmup_requests(self, config):
        # generate samples, but from a fixed seed: the same draw in every process and loader.
        greedy = self.warmup_inputs(config)
        sampled = {**greedy, "temperature": np.float32(0.8), "top_k": np.int32(5),
                   "top_p": np.float32(0.9), "seed": np.int32(3)}
        return {"serving_default": greedy, "generate": sampled,
                "score": {"text": np.array([p or "a" for p in greedy["prompt"]], dtype=object)}}

    # ---- command line ---------------------------------------------------------------------
    def add_prompt_arguments(self, parser):
        parser.add_argument("--prompt", default=None, help="text to continue (default: empty)")
        parser.add_argument("--length", type=int, default=None,
                            help="characters to generate (default: 40 for names, 300 for text)")
        parser.add_argument("--num-samples", type=int, default=1)

    def predict_inputs(self, config, request):
        temperature = self.check_temperature(request)
        prompt, length = request.option("prompt"), request.option("length")
        num_samples = request.option("num_samples", 1)
        if length is not None and length < 0:
            raise InputError(f"--length must be >= 0, got {length}")
        if num_samples < 1:
            raise InputError(f"--num-samples must be >= 1, got {num_samples}")
        texts = list(request.texts)
        prompts = texts or [prompt or ""]
        if prompt is not None and texts:
            prompts = [prompt] + prompts
        lines = (config.data or "names") == "names" or config.mode == "lines"
        length = length if length is not None else (40 if lines else 300)
        return {"prompt": tf.constant([p for p in prompts for _ in range(num_samples)]),
                "length": tf.constant(length, tf.int32),
                "temperature": tf.constant(temperature, tf.float32)}

    def empty_result(self, config, text):
        return None  # an empty prompt generates from the start

    def show_predictions(self, config, request, inputs, outputs):
        texts = [t.decode("utf-8") for t in outputs["text"].numpy().tolist()]
        seen = outputs["seen_in_training"].numpy().tolist()
        lines = all(s >= 0 for s in seen)
        results = []
        for text, was_seen in zip(texts, seen, strict=True):
            result = {"text": text}
            if lines:
                result["new"] = not bool(was_seen)
            results.append(result)
            if not request.json:
                flag = ("(seen in training) " if was_seen else "(new) ") if lines else ""
                print(f"{flag}{text}")
        return results

    def score_rows(self, texts, outputs):
        rows = [{"text": t, "log_prob": float(lp), "log_prob_per_char": float(pc),
                 "num_scored": int(n)} for t, lp, pc, n in zip(
                     texts, outputs["log_prob"].numpy(), outputs["log_prob_per_char"].numpy(),
                     outputs["num_scored"].numpy(), strict=True)]
        return sorted(rows, key=lambda r: -r["log_prob_per_char"])

    def score_line(self, row):
        return (f"{row['log_prob_per_char']:9.4f} nats/char  {row['log_prob']:10.3f} total  "
                f"{row['text']}")

    def search_space(self, hp):
        return {
            "cell": hp.Choice("cell", ["lstm", "peephole_lstm", "gru"]),
            "units": hp.Choice("units", [64, 128, 256]),
            "num_layers": hp.Int("num_layers", 1, 3),
            "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1),
            "embedding_dim": hp.Choice("embedding_dim", [16, 32, 64]),
            "learning_rate": hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"),
        }


if __name__ == "__main__":
    raise SystemExit(main(CharGenerationTask()))
