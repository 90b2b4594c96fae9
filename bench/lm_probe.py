"""Linear probe: do a word LM's encoder states carry sentiment? LM encoder vs a random one.

    python -m bench.transfer                       # writes /tmp/transfer/{lm, labeled_*, heldout}
    python -m bench.lm_probe --lm /tmp/transfer/lm --train /tmp/transfer/labeled_2000_1337.csv \\
        --heldout /tmp/transfer/heldout.csv

The classifier of ``--set pretrained=LM`` (:func:`models.pretrained_encoder
.build_pretrained_classifier`) is built twice with the LM's sizes: once with the LM's
embedding and LSTM weights copied in, once left at its random initialisation. Both encode the
first ``--train-reviews`` labeled reviews and the first ``--heldout-reviews`` held-out reviews
(the LM's tokenizer, ``--max-length`` tokens) into their concat-pooled states (``pooling``:
last, max and mean of the top layer), and a standardised logistic regression per encoder and
``C`` is fitted on the first and scored on the second. If the LM's states beat the random
ones by little, fine-tuning starts from features no better than a random encoder's: the LM
needs more data or training, not the classifier. A minute or two on 2 CPU cores. scikit-learn
comes with seqeval (the `demo` extra). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.pretrained_encoder import build_pretrained_classifier, copy_encoder_weights  # noqa: E402,E501
from tasks.sentiment_pretrained import LanguageModelRun  # noqa: E402


def _reviews(path: str, count: int, positive: str) -> tuple[list[str], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    return [r["text"] for r in rows], np.array([r["label"] == positive for r in rows], int)


def _features(classifier, run, texts, max_length: int, batch: int = 64) -> np.ndarray:
    """[len(texts), 3 * units]: the classifier's ``pooling`` output per review."""
    pooled = keras.Model(classifier.input, classifier.get_layer("pooling").output)
    out = []
    for i in range(0, len(texts), batch):
        ids = tf.cast(run.words.ids(run.words.tokens(tf.constant(texts[i:i + batch]))),
                      tf.int32)[:, :max_length].to_tensor(0)
        out.append(pooled.predict(ids, verbose=0))
    return np.concatenate(out)


def main(argv=None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", required=True, help="a language_model run directory")
    parser.add_argument("--train", required=True, help="labeled CSV (text,label)")
    parser.add_argument("--heldout", required=True, help="held-out CSV (text,label)")
    parser.add_argument("--train-reviews", type=int, default=1500)
    parser.add_argument("--heldout-reviews", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--positive", default="positive", help="the positive class name")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run = LanguageModelRun(args.lm)
    config = run.config
    train_x, train_y = _reviews(args.train, args.train_reviews, args.positive)
    test_x, test_y = _reviews(args.heldout, args.heldout_reviews, args.positive)
    result = {"benchmark": "lm_probe", "lm": args.lm, "train_reviews": len(train_x),
              "heldout_reviews": len(test_x), "units": config.units,
              "num_layers": config.num_layers}
    for encoder in ("random", "lm"):
        keras.utils.set_random_seed(args.seed)
        classifier = build_pretrained_classifier(
            run.words.vocabulary_size, 2, embedding_dim=config.embedding_dim,
            units=config.units, num_layers=config.num_layers, cell=config.cell)
        if encoder == "lm":
            copy_encoder_weights(classifier, run.model)
        train_f = _features(classifier, run, train_x, args.max_length)
        test_f = _features(classifier, run, test_x, args.max_length)
        for c in (0.01, 0.1, 1.0):
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c))
            probe.fit(train_f, train_y)
            result[f"{encoder}_encoder_C{c}"] = round(float(probe.score(test_f, test_y)), 4)
            print(json.dumps({"encoder": encoder, "C": c,
                              "heldout_accuracy": result[f"{encoder}_encoder_C{c}"]}), flush=True)
    result["lm_best"] = max(v for k, v in result.items() if k.startswith("lm_encoder"))
    result["random_best"] = max(v for k, v in result.items() if k.startswith("random_encoder"))
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
