"""CoNLL-2003 validation entity F1 with vs without Flair-style char-LM features, same seed.

    python bench/ner_char_lm.py --data ../shared/data/conll2003 --out /tmp/ner_char_lm

Trains a forward and a backward char LM (``tasks.char_generation``, continuous text) on the
training split's sentences, then the same small NER tagger twice (``char_lm=FW,BW`` and
without), every run through the CLI in this process, and prints one JSON line: both F1s, their
difference and the CPU/wall seconds of each step. Small settings (a few minutes on 2 cores):
the numbers compare the two configurations, they are not the tagger's best.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAST = ["--set", "mixed_precision=off", "--set", "jit_compile=off"]


def _sentences(path: str) -> list[str]:
    out, words = [], []
    for line in open(path, encoding="utf-8"):
        token = line.split()[0] if line.strip() else ""
        if token and token != "-DOCSTART-":
            words.append(token)
        elif words:
            out.append(" ".join(words))
            words = []
    return out + ([" ".join(words)] if words else [])


def _timed(label, fn, times):
    wall, cpu = time.time(), time.process_time()
    code = fn()
    times[label] = {"wall_s": round(time.time() - wall, 1),
                    "cpu_s": round(time.process_time() - cpu, 1)}
    if code != 0:
        raise SystemExit(f"{label} failed ({code})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/conll2003")
    parser.add_argument("--out", default="/tmp/ner_char_lm")
    parser.add_argument("--max-examples", type=int, default=4000)  # NER train sentences
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lm-steps", type=int, default=300)
    parser.add_argument("--lm-units", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.data, "train.txt")):
        print(f"skipped: no {args.data}/train.txt")
        return 0
    from tasks import char_generation as cg
    from tasks import ner
    from tasks.runner import cli

    os.makedirs(args.out, exist_ok=True)
    text = os.path.join(args.out, "train_text.txt")
    sentences = _sentences(os.path.join(args.data, "train.txt"))
    with open(text, "w", encoding="utf-8") as f:  # paragraphs of 20 sentences
        f.write("\n\n".join("\n".join(sentences[i:i + 20])
                            for i in range(0, len(sentences), 20)) + "\n")
    times, f1 = {}, {}
    lm = ["--data", text, "--overwrite", "--epochs", "1", "--set", "mode=continuous",
          "--set", f"steps_per_epoch={args.lm_steps}", "--set", f"units={args.lm_units}",
          "--set", "num_layers=1", "--set", "embedding_dim=32", "--set", "batch_size=64",
          "--set", "learning_rate=0.005", "--set", f"seed={args.seed}", *FAST]
    runs = {name: os.path.join(args.out, name) for name in ("fw", "bw")}
    for name, extra in (("fw", []), ("bw", ["--set", "reverse=true"])):
        _timed(f"lm_{name}", lambda name=name, extra=extra: cli.main(
            cg.CharGenerationTask(), ["train", "--output", runs[name], *lm, *extra]), times)
    tagger = ["--data", args.data, "--overwrite", "--epochs", str(args.epochs), "--set",
              f"max_examples={args.max_examples}", "--set", "units=64", "--set",
              "embedding_dim=50", "--set", "num_layers=1", "--set", "char_encoder=cnn",
              "--set", "batch_size=32", "--set", "dropout=0.3", "--set",
              "learning_rate=0.003", "--set", f"seed={args.seed}", *FAST]
    for label, extra in (("without", []), ("with", ["--set",
                                                    f"char_lm={runs['fw']},{runs['bw']}"])):
        run = os.path.join(args.out, f"ner_{label}")
        _timed(f"ner_{label}", lambda run=run, extra=extra: cli.main(ner.NerTask(), [
            "train", "--output", run, *tagger, *extra]), times)
        with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
            f1[label] = json.load(f)["validation"]["f1"]
    print(json.dumps({"valid_f1_without": f1["without"], "valid_f1_with": f1["with"],
                      "difference": f1["with"] - f1["without"], "times": times,
                      "settings": vars(args)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
