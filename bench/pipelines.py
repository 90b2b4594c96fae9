"""Input pipelines: examples/s per task, pipeline vs model rate, length bucketing vs pad-to-max.

    python bench/pipelines.py [--max-examples 5000] [--batches 40] [--batch-size 32]
                              [--max-length 400] [--tasks sentiment ner ...] [--rounds 1]

For every task: ``sources.load`` (capped at ``--max-examples`` training examples), vocabularies
adapted on the training split, vectorise + window/teacher-force + batch, then the rate at which
``--batches`` batches come out (after two warm-up batches; the dataset repeats when it is short).
Nothing is cached, so this is the cost of the preprocessing itself.

Sentiment (IMDB) also gets, in the same run and on the same vectorised examples (cached, so only
batching differs):

* the fraction of padded tokens with ``bucket_batch`` vs ``padded_batch`` (every batch padded
  to its own longest review, the usual baseline);
* one epoch (the first ``--epoch-examples`` reviews) of a small BiLSTM (Embedding(mask_zero) +
  Bidirectional(LSTM(32)) + Dense) with each batching: fresh models, same seed, both traced on a
  few batches first; ``bucketing_speedup`` = pad-to-max time / bucketed time (goal >= 1.5). With
  ``--rounds N`` the two epochs alternate N times and the fastest of each is kept;
* the model's consumption rate = examples / bucketed epoch time (its batches are cached, so
  tf.data costs nothing there) and the ratio pipeline rate / model rate (goal >= 10).

The last stdout line is one JSON object with ``<task>_examples_per_s``, ``<task>_setup_s``,
``sentiment_model_examples_per_s``, ``sentiment_pipeline_to_model_ratio``,
``padded_fraction_bucketed``, ``padded_fraction_max``, ``epoch_s_bucketed``, ``epoch_s_max``,
``bucketing_speedup``, ``boundaries`` and the machine load (the figures are ratios because the
machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
# Run as a script, bench/ is sys.path[0] and this file would shadow the `pipelines` package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tasks.runner.registry  # noqa: E402,F401 (the tasks register their data sources)
from pipelines import batching, sources  # noqa: E402
from pipelines.vocab import CharVocabulary, LabelLookup, TokenVocabulary, WordVectorizer  # noqa: E402,E501

AUTOTUNE = tf.data.AUTOTUNE
# fit() on a dataset of unknown cardinality warns at the end of every epoch
warnings.filterwarnings("ignore", message="Your input ran out of data")
TASKS = ("sentiment", "ner", "char_generation", "music_generation", "seq2seq")


def _texts(split, key):
    return split.map(lambda e: e[key])


def sentiment_examples(splits, args):
    """Unbatched ``(ids [time], label)``: vectorised 256 reviews at a time, exact lengths."""
    vec = WordVectorizer(max_tokens=args.max_tokens).adapt(_texts(splits.train, "text"))
    limit = args.max_length or None

    def encode(batch):
        return vec(batch["text"], ragged=True)[:, :limit], batch["label"]

    ds = splits.train.batch(256).map(encode, num_parallel_calls=AUTOTUNE).unbatch()
    # an RNN needs one step at least; an empty review has nothing to learn from anyway
    return ds.filter(lambda ids, label: tf.size(ids) > 0), vec


def sentiment(splits, args):
    ds, _ = sentiment_examples(splits, args)
    return batching.bucket_batch(ds, args.batch_size, lambda ids, label: tf.shape(ids)[0])[0]


def ner(splits, args):
    words = TokenVocabulary(lowercase=True).adapt(_texts(splits.train, "tokens"))
    chars = CharVocabulary(add_start_end=False).adapt(_texts(splits.train, "tokens"))
    tags = LabelLookup(splits.info["tag_names"])

    def encode(e):
        return ({"word_ids": words(e["tokens"]),
                 "char_ids": chars.token_chars(e["tokens"], max_word_length=16)},
                tags(e["tags"]))

    ds = splits.train.map(encode, num_parallel_calls=AUTOTUNE)
    return batching.bucket_batch(ds, args.batch_size, lambda x, y: tf.shape(y)[0])[0]


def char_generation(splits, args):
    chars = CharVocabulary().adapt(_texts(splits.train, "text"))
    lines = splits.info.get("mode", "lines") == "lines"
    ids = splits.train.map(lambda e: chars(e["text"], add_start_end=lines),
                           num_parallel_calls=AUTOTUNE)
    ds = batching.lm_windows(ids, args.sequence_length, per_example=lines)
    return ds.batch(args.batch_size)


def music_generation(splits, args):
    ds = batching.lm_windows(_texts(splits.train, "notes"), args.sequence_length)
    return ds.batch(args.batch_size)


def seq2seq(splits, args):
    src = CharVocabulary(add_start_end=False).adapt(_texts(splits.train, "source"))
    tgt = CharVocabulary(add_start_end=True).adapt(_texts(splits.train, "target"))

    def encode(e):
        return batching.teacher_forcing(src(e["source"]), tgt(e["target"], add_start_end=False),
                                        tgt.start_id, tgt.end_id)

    ds = splits.train.map(encode, num_parallel_calls=AUTOTUNE)
    return batching.bucket_batch(ds, args.batch_size,
                                 lambda inputs, target: tf.shape(inputs[0])[0])[0]


def batch_rows(element) -> int:
    return int(tf.nest.flatten(element)[-1].shape[0])


def pipeline_rate(ds, batches: int) -> float:
    """Examples per second over ``batches`` batches, after 2 warm-up batches."""
    it = iter(ds.repeat().prefetch(AUTOTUNE))
    for _ in range(2):
        next(it)
    rows, start = 0, time.perf_counter()
    for _ in range(batches):
        rows += batch_rows(next(it))
    return rows / (time.perf_counter() - start)


def bilstm(vocabulary_size: int, units: int):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(vocabulary_size, 32, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(units)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile("adam", "binary_crossentropy")
    return model


def timed_epoch(model, ds) -> float:
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def sentiment_batching(splits, args, pipeline_examples_per_s: float) -> dict:
    examples, vec = sentiment_examples(splits, args)
    examples = examples.take(args.epoch_examples or -1).cache()
    count = sum(1 for _ in examples)  # fills the cache: both variants read the same ids
    bucketed, boundaries = batching.bucket_batch(
        examples, args.batch_size, lambda ids, label: tf.shape(ids)[0])
    padded, _ = batching.bucket_batch(examples, args.batch_size, lambda ids, label: 0,
                                      boundaries=[])  # one bucket: plain padded_batch
    variants = {"bucketed": bucketed.cache(), "max": padded.cache()}
    result = {"sentiment_train_examples": count, "boundaries": boundaries}
    for name, ds in variants.items():
        result[f"padded_fraction_{name}"] = round(batching.padding_stats(ds), 4)  # fills cache
    models = {name: bilstm(vec.vocabulary_size, args.units) for name in variants}
    for name, model in models.items():
        # Trace before timing, on batches of other sizes and lengths too: Keras relaxes the
        # traced shapes to [None, None] then, so no retrace lands in the timed epoch.
        ds = variants[name]
        warm = ds.take(3).concatenate(ds.take(1).unbatch().batch(5).take(1))
        model.fit(warm, epochs=1, verbose=0, shuffle=False)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in ("max", "bucketed"):
            times[name].append(timed_epoch(models[name], variants[name]))
    best = {name: min(t) for name, t in times.items()}
    # the model's own consumption rate: the bucketed epoch reads pre-built (cached) batches
    model_rate = count / best["bucketed"]
    result.update({
        "sentiment_model_examples_per_s": round(model_rate, 1),
        "sentiment_pipeline_to_model_ratio": round(pipeline_examples_per_s / model_rate, 1),
        "epoch_s_bucketed": round(best["bucketed"], 2), "epoch_s_max": round(best["max"], 2),
        "epoch_s_all": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "bucketing_speedup": round(best["max"] / best["bucketed"], 2),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=5000,
                        help="training examples per task (0 = all)")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per pipeline")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=400,
                        help="truncate reviews to this many words (0 = no cap)")
    parser.add_argument("--max-tokens", type=int, default=20000)
    parser.add_argument("--sequence-length", type=int, default=64, help="LM windows")
    parser.add_argument("--units", type=int, default=32, help="BiLSTM units")
    parser.add_argument("--epoch-examples", type=int, default=1000,
                        help="IMDB training reviews in the timed BiLSTM epochs (0 = all loaded)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating epoch pairs")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--no-model", action="store_true", help="skip the BiLSTM part")
    args = parser.parse_args()
    for flag in ("batches", "batch_size", "sequence_length", "units", "rounds", "max_tokens"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if min(args.max_examples, args.max_length, args.epoch_examples) < 0:
        parser.error("--max-examples, --max-length and --epoch-examples must be >= 0")

    result = {"bench": "pipelines", "max_examples": args.max_examples,
              "epoch_examples": args.epoch_examples,
              "batch_size": args.batch_size, "max_length": args.max_length,
              "batches": args.batches, "cpu_count": os.cpu_count(),
              "loadavg_start": round(os.getloadavg()[0], 2)}
    splits_by_task = {}
    for task in args.tasks:
        start = time.perf_counter()
        splits = sources.load(task, max_examples=args.max_examples)
        splits_by_task[task] = splits
        ds = globals()[task](splits, args)
        setup = time.perf_counter() - start
        rate = pipeline_rate(ds, args.batches)
        result[f"{task}_examples_per_s"] = round(rate, 1)
        result[f"{task}_setup_s"] = round(setup, 2)
        print(f"{task:<17} {rate:10.1f} examples/s   (load + adapt {setup:.1f} s, source "
              f"{splits.info['source']}, {splits.info['examples']['train']} train examples)",
              flush=True)
    if "sentiment" in args.tasks and not args.no_model:
        result.update(sentiment_batching(splits_by_task["sentiment"], args,
                                         result["sentiment_examples_per_s"]))
        print(f"BiLSTM train rate  {result['sentiment_model_examples_per_s']:.1f} examples/s; "
              f"pipeline/model = {result['sentiment_pipeline_to_model_ratio']}x (goal >= 10)")
        print(f"padded tokens      bucketed {result['padded_fraction_bucketed']:.1%}, pad-to-max "
              f"{result['padded_fraction_max']:.1%} (boundaries {result['boundaries']})")
        print(f"one epoch          bucketed {result['epoch_s_bucketed']:.1f} s, pad-to-max "
              f"{result['epoch_s_max']:.1f} s: speedup {result['bucketing_speedup']}x "
              "(goal >= 1.5)")
    result["loadavg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
