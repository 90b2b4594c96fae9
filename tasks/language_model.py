"""Word-level language model: P(sentence) as a product of conditionals, and new sentences.

    python -m tasks.language_model train --epochs 5               # Shakespeare by default
    python -m tasks.language_model train --data my_texts/ --output runs/lm
    python -m tasks.language_model evaluate --model runs/language_model   # perplexity
    python -m tasks.language_model score --model runs/language_model "the king is dead"
    python -m tasks.language_model generate --model runs/language_model --prompt "the king" \
        --top-p 0.9 --seed 1 --num-samples 3
    python -m tasks.language_model export --model runs/language_model

(also ``python -m tasks language_model ...``). Data: :mod:`tasks.language_model_data`
(``shakespeare``, ``imdb``, ``conll``, any text file or folder). Words and ``<eos>`` /
``<unk>``, BPTT batching and exact perplexity: :mod:`tasks.language_model_text`. The model
(AWD-LSTM-style regularisation, tied weights, peephole cells): :mod:`models.word_language_model`.
Serving (``generate`` / ``score`` in-graph from raw strings):
:mod:`tasks.language_model_serving`.

Perplexity (``evaluate``, and ``val_perplexity`` after every epoch, the monitor) is exp(mean
NLL per token, ``<eos>`` included) over the WHOLE split with the states carried through it;
``unigram_perplexity`` is the add-one unigram model of the training split on the same tokens.

What a fine-tuning step reads from a run directory:

* ``assets/words.vocab.txt`` (line i = id i: "" padding, ``[UNK]`` = ``<unk>``, ``<eos>``,
  then the words) with ``assets/words.json``, and ``assets/language_model.json``
  (``lowercase``, ``eos_id``, ``unigram_counts``);
* ``model.keras``: layer ``embedding`` (``WordEmbedding``: ``embeddings`` [vocab,
  embedding_dim], tied ``output_bias`` [vocab]), the recurrent layers ``lstm_1`` ...
  ``lstm_{num_layers}`` (``CarriedLSTM`` / ``CarriedPeepholeLSTM``, whatever the cell),
  ``projection`` (tied, ``units != embedding_dim``) or ``logits`` (untied);
* ``config.json``: the sizes (``units``, ``num_layers``, ``embedding_dim``, ``cell``...).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from models.word_language_model import CELLS, build_word_language_model, reset_carried_states
from pipelines import sources
from tasks import language_model_data  # noqa: F401 (registers the task's data sources)
from tasks import language_model_text as text_lib
from tasks.generative import GenerativeTask
from tasks.language_model_serving import LanguageModelServing
from tasks.runner import registry
from tasks.runner.cli import main
from tasks.runner.config import TaskConfig
from tasks.runner.errors import InputError

#: Tokens per step of the exact evaluation (states carry across steps, so only speed).
EVAL_WINDOW = 200


@dataclasses.dataclass(frozen=True)
class LanguageModelConfig(TaskConfig):
    data: str = "shakespeare"
    mode: str = ""                 # text files: lines|continuous ("" = lines)
    max_tokens: int = 10000        # vocabulary cap, padding/<unk>/<eos> included
    min_count: int = 1             # words seen fewer times in train become <unk>
    lowercase: bool = True
    bptt: int = 35                 # truncated-BPTT window (tokens)
    batch_size: int = 20           # contiguous streams of the training split
    eval_streams: int = 32         # evaluation: states reset only at these many cuts
    units: int = 256
    num_layers: int = 2
    embedding_dim: int = 256
    dropout: float = 0.2           # locked dropout on the embeddings (AWD "dropouti")
    hidden_dropout: float = 0.2    # locked dropout between recurrent layers ("dropouth")
    output_dropout: float = 0.3    # locked dropout on the top output ("dropout")
    embedding_dropout: float = 0.1  # whole word rows of the embedding ("dropoute")
    tie_weights: bool = True
    learning_rate: float = 2e-3
    clipnorm: float = 0.25
    max_generate_length: int = 200  # served `length` is clipped to this
    max_prompt_tokens: int = 200   # a prompt's last words fed (more: `truncated`)
    max_score_tokens: int = 2000   # `score` reads a text's first words
    top_k: int = 0                 # serving_default's; `generate` takes its own
    top_p: float = 1.0

    def check(self, checks):
        super().check(checks)
        checks.one_of(mode=("", "lines", "continuous"), cell=CELLS)
        checks.at_least(1, "bptt", "min_count", "eval_streams", "max_generate_length",
                        "max_prompt_tokens", "max_score_tokens")
        checks.at_least(text_lib.RESERVED + 1, "max_tokens")
        checks.at_least(0, "top_k")
        checks.fraction("hidden_dropout", "output_dropout", "embedding_dropout")
        checks.require("top_p", 0 < self.top_p <= 1, "must be in (0, 1]")
        for name in ("tie_weights", "lowercase"):
            checks.require(name, isinstance(getattr(self, name), bool), "must be true/false")


@registry.register
class LanguageModelTask(GenerativeTask):
    """Word-level LSTM language model: scores sentences and samples new ones."""

    name = "language_model"
    order = 60  # position in task listings and `make demo`
    config_class = LanguageModelConfig
    preprocessor_class = text_lib.WordLMPreprocessor
    serving_class = LanguageModelServing
    monitor, monitor_mode = "perplexity", "min"
    sampled_unit, generate_takes_inputs, scores_texts = "word", True, True
    demo_overrides = {"max_examples": 5000, "epochs": 3, "units": 96, "embedding_dim": 96,
                      "num_layers": 1, "max_tokens": 2500, "bptt": 25, "batch_size": 16,
                      "dropout": 0.1, "hidden_dropout": 0.1, "output_dropout": 0.1,
                      "embedding_dropout": 0.0, "learning_rate": 5e-3,
                      # The precision and XLA probes cost more than they save in a 1-min run.
                      "mixed_precision": "off", "jit_compile": "off"}
    demo_inputs = {"prompt": ["the king", "my lord ,", ""], "length": 15,
                   "temperature": 0.8}

    def __init__(self):
        self._streams = {}  # id(split) -> (split, preprocessor, ids): encode each split once

    # ---- data ------------------------------------------------------------------------------
    def load_splits(self, config, evaluation=False):
        options = {"mode": config.mode} if config.mode else {}
        return sources.load("language_model", config.data or "shakespeare", seed=config.seed,
                            max_examples=config.max_examples, evaluation=evaluation,
                            **options)

    def fit_preprocessor(self, config, splits):
        texts = splits.train.map(lambda e: e["text"])
        if config.vocab_max_examples:
            texts = texts.take(config.vocab_max_examples)
        preprocessor = text_lib.WordLMPreprocessor.fit(
            texts, max_tokens=config.max_tokens, min_count=config.min_count,
            lowercase=config.lowercase)
        ids = self.token_stream(preprocessor, splits.train)
        preprocessor.set_counts(np.bincount(ids, minlength=preprocessor.vocabulary_size))
        return preprocessor

    def token_stream(self, preprocessor, split) -> np.ndarray:
        """int32 [tokens] of ``split`` (``<eos>`` after each line), encoded once per split."""
        key = id(split)
        cached = self._streams.get(key)
        if cached is None or cached[1] is not preprocessor:
            cached = (split, preprocessor, text_lib.encode(preprocessor, split))
            self._streams[key] = cached
        return cached[2]

    def make_dataset(self, config, preprocessor, split, training):
        ids = self.token_stream(preprocessor, split)
        if training:
            return text_lib.bptt_batches(ids, config.batch_size, config.bptt, "training split")
        # Validation in fit starts each window from zero states (Keras' val_loss is an
        # approximation); the monitored val_perplexity carries them (epoch_metrics).
        bptt = min(config.bptt, max(1, len(ids) - 1))  # a short split: one shorter window
        streams = max(1, min(config.batch_size, (len(ids) - 1) // (bptt + 1)))
        return text_lib.bptt_batches(ids, streams, bptt, "validation split")

    # ---- model -----------------------------------------------------------------------------
    def build_model(self, config, preprocessor):
        return build_word_language_model(
            preprocessor.vocabulary_size, embedding_dim=config.embedding_dim,
            units=config.units, num_layers=config.num_layers, cell=config.cell,
            embedding_dropout=config.embedding_dropout, input_dropout=config.dropout,
            hidden_dropout=config.hidden_dropout, output_dropout=config.output_dropout,
            recurrent_dropout=config.recurrent_dropout, tie_weights=config.tie_weights,
            carry_batch_size=config.batch_size, seed=config.seed)

    def compile_kwargs(self, config):
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        """Perplexity over the whole split (states carried), the unigram baseline, OOV rate."""
        ids = self.token_stream(preprocessor, split)
        total, count = text_lib.stream_log_likelihood(model, ids, config.eval_streams,
                                                      EVAL_WINDOW)
        unigram = text_lib.perplexity_metrics(
            text_lib.unigram_log_likelihood(preprocessor.counts, ids), len(ids))
        return {**text_lib.perplexity_metrics(total, count),
                "unigram_perplexity": unigram["perplexity"],
                "oov_rate": text_lib.oov_rate(ids), "examples": int(sum(1 for _ in split))}

    def epoch_metrics(self, config, preprocessor, split):
        def evaluate(model):
            # An epoch ends here: the next one starts its streams anew, from zero states.
            reset_carried_states(model)
            ids = self.token_stream(preprocessor, split)
            total, count = text_lib.stream_log_likelihood(model, ids, config.eval_streams,
                                                          EVAL_WINDOW)
            return {"perplexity": text_lib.perplexity_metrics(total, count)["perplexity"]}
        return evaluate

    # ---- serving -----------------------------------------------------------------------------
    def serving_module(self, config, model, preprocessor):
        # Kept alive by the task: tf.function methods hold their module only weakly.
        self._serving = LanguageModelServing(model, preprocessor, config)
        return self._serving

    def warmup_inputs(self, config):
        # Greedy, so the fresh-process validation can compare texts exactly.
        return {"prompt": np.array(["the", ""], dtype=object), "length": np.int32(8),
                "temperature": np.float32(0.0)}

    def warmup_requests(self, config):
        greedy = self.warmup_inputs(config)
        sampled = {**greedy, "temperature": np.float32(0.8), "top_k": np.int32(5),
                   "top_p": np.float32(0.9), "seed": np.int32(3)}
        return {"serving_default": greedy, "generate": sampled,
                "score": {"text": np.array(["the king is here .", "a"], dtype=object)}}

    # ---- command line ------------------------------------------------------------------------
    def add_prompt_arguments(self, parser):
        parser.add_argument("--prompt", default=None, help="words to continue (default: none)")
        parser.add_argument("--length", type=int, default=30,
                            help="most words to generate (stops at <eos>)")
        parser.add_argument("--num-samples", type=int, default=1)

    def predict_inputs(self, config, request):
        temperature = self.check_temperature(request)
        prompt, length = request.option("prompt"), request.option("length", 30)
        num_samples = request.option("num_samples", 1)
        if length < 0:
            raise InputError(f"--length must be >= 0, got {length}")
        if num_samples < 1:
            raise InputError(f"--num-samples must be >= 1, got {num_samples}")
        prompts = list(request.texts) or [prompt or ""]
        if prompt is not None and request.texts:
            prompts = [prompt] + prompts
        return {"prompt": tf.constant([p for p in prompts for _ in range(num_samples)]),
                "length": tf.constant(length, tf.int32),
                "temperature": tf.constant(temperature, tf.float32)}

    def empty_result(self, config, text):
        return None  # an empty prompt starts a new sentence

    def show_predictions(self, config, request, inputs, outputs):
        results = []
        for text, n in zip(outputs["text"].numpy().tolist(),
                           outputs["num_words"].numpy().tolist(), strict=True):
            results.append({"text": text.decode("utf-8"), "num_words": int(n)})
            if not request.json:
                print(results[-1]["text"])
        return results

    def score_rows(self, texts, outputs):
        """log P(sentence) (nats), perplexity and the scored tokens, lowest perplexity first."""
        rows = []
        for i, text in enumerate(texts):
            n = int(outputs["num_tokens"][i])
            rows.append({"text": text, "log_prob": float(outputs["log_prob"][i]),
                         "perplexity": float(outputs["perplexity"][i]),
                         "tokens": [t.decode("utf-8") for t in outputs["tokens"][i][:n].numpy()],
                         "token_log_probs": [float(x) for x in outputs["token_log_probs"][i][:n]],
                         "truncated": bool(outputs["truncated"][i])})
        return sorted(rows, key=lambda r: r["perplexity"])

    def score_line(self, row):
        return (f"{row['log_prob']:10.3f} nats  perplexity {row['perplexity']:9.2f}  "
                f"{' '.join(row['tokens'])}")

    def search_space(self, hp):
        return {
            "cell": hp.Choice("cell", list(CELLS)),
            "units": hp.Choice("units", [64, 128, 256]),
            "num_layers": hp.Int("num_layers", 1, 3),
            "dropout": hp.Float("dropout", 0.0, 0.4, step=0.1),
            "hidden_dropout": hp.Float("hidden_dropout", 0.0, 0.4, step=0.1),
            "embedding_dropout": hp.Float("embedding_dropout", 0.0, 0.2, step=0.1),
            "embedding_dim": hp.Choice("embedding_dim", [64, 128, 256]),
            "learning_rate": hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"),
        }


if __name__ == "__main__":
    raise SystemExit(main(LanguageModelTask()))
