"""Peak RSS of a short ``train`` on generated corpora of growing size (streaming data path).

    python bench/task_memory.py                  # 100 MB and 1 GB, sentiment CSV and char text
    python bench/task_memory.py --with-3gb       # also a 3 GB char text file
    python bench/task_memory.py --sizes-mb 5,50  # quick check
    python bench/task_memory.py --loads          # ner/seq2seq: load + one train pass,
                                                 # streamed vs the old in-memory path

``--loads`` (``--load-mb``, default 100): for a generated CoNLL file and a generated pairs
file, the peak RSS and seconds of ``sources.load`` plus one pass over the train split, in a
child process each: ``streamed`` (today's path) and ``lists`` (the path before streaming,
still in the code: ``conll.ner_splits`` / ``pairs.pairs_splits`` read the file into Python
lists, ``_build_ner`` / ``_build_seq2seq`` turn them into graph constants).

For each task and size it writes a corpus into a temporary directory (deleted afterwards), runs
``python -m tasks.<task> train`` in a child process on the file: a small model,
``--max-examples`` training examples (a quarter of that for validation), ``steps_per_epoch``
steps. The index pass (every record checked, offsets and counts kept) and the seeded split
read the WHOLE corpus; training, counting and validation read only the capped examples,
fetched lazily from the file (full passes over 1 GB take hours on 2 shared cores). It records
the child's peak RSS (``getrusage(RUSAGE_CHILDREN)`` of a wrapper process per run). The last
stdout line is one JSON object: peak MB per task and size, the largest/smallest ratio per task
(goal <= 1.5 for 1 GB vs 100 MB) and whether the 3 GB text trained.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("film movie plot actor story scene music camera director script ending moment "
         "character drama comedy action slow fast long short great good bad dull boring "
         "wonderful awful brilliant weak strong funny sad dark bright the a of and to in is "
         "it that this was with for as but not").split()
POSITIVE, NEGATIVE = ("great wonderful brilliant funny strong".split(),
                      "awful dull boring weak bad".split())
# Settings of the short run: a small model so the validation passes over the corpus are quick.
RUN = {"sentiment": ["--set", "max_length=64", "--set", "units=16", "--set", "embedding_dim=16",
                     "--set", "batch_size=256", "--set", "max_tokens=5000"],
       "char_generation": ["--set", "sequence_length=64", "--set", "units=16", "--set",
                           "embedding_dim=8", "--set", "batch_size=256"]}
_WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")


def _block(rng, rows: int, kind: str) -> list[str]:
    """A few MB of distinct generated text, repeated (with a counter) to reach a size."""
    out = []
    for _ in range(rows):
        words = list(rng.choice(WORDS, size=int(rng.integers(20, 200))))
        label = int(rng.integers(0, 2))
        words += list(rng.choice(POSITIVE if label else NEGATIVE, size=3))
        if kind == "csv":
            out.append(f"{' '.join(words)},{label}")
        else:
            lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
            out.append("\n".join(lines))
    return out


def write_corpus(path: str, size_mb: int, kind: str, seed: int = 0) -> int:
    """Writes about ``size_mb`` MB: a ``text,label`` CSV or blank-line separated paragraphs."""
    rng = np.random.default_rng(seed)
    block = _block(rng, 5000, kind)
    target, written, i = size_mb * 2 ** 20, 0, 0
    with open(path, "w", encoding="utf-8") as f:
        if kind == "csv":
            written += f.write("text,label\n")
        while written < target:
            parts = []
            for row in block:
                text = f"{row[:-2]} r{i}{row[-2:]}\n" if kind == "csv" else f"{row} p{i}\n\n"
                parts.append(text)
                i += 1
            written += f.write("".join(parts))
    return os.path.getsize(path)


def write_records(path: str, size_mb: int, kind: str, seed: int = 0) -> int:
    """About ``size_mb`` MB of CoNLL sentences (``kind="conll"``: ``token POS tag`` lines,
    a ``-DOCSTART-`` every 50 sentences) or tab-separated pairs (``"pairs"``)."""
    rng = np.random.default_rng(seed)
    types = ("PER", "LOC", "ORG", "MISC")
    block = []
    for i in range(5000):
        words = list(rng.choice(WORDS, size=int(rng.integers(4, 30))))
        if kind == "conll":
            lines = ["-DOCSTART- -X- O\n"] if i % 50 == 0 else []
            previous = "O"
            for w in words:
                kind_ = types[int(rng.integers(0, 4))]
                tag = ("O" if rng.random() < 0.7 else f"B-{kind_}" if previous == "O"
                       else f"I-{previous[2:]}")
                previous = tag
                lines.append(f"{w.capitalize() if tag != 'O' else w} NN {tag}\n")
            block.append("".join(lines) + "\n")
        else:
            half = len(words) // 2
            block.append((" ".join(words[:half]), " ".join(words[half:]).upper()))
    target, written, i = size_mb * 2 ** 20, 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            if kind == "conll":
                written += f.write("".join(block))
            else:
                written += f.write("".join(f"{a} {i + k}\t{b}\n" for k, (a, b) in
                                           enumerate(block)))
                i += len(block)
    return os.path.getsize(path)


_LOAD = """
import json, resource, sys, time
import tasks.runner.registry
from pipelines import sources
task, path, mode = sys.argv[1:4]
start = time.perf_counter()
if mode == "streamed":
    splits = sources.load(task, path, seed=1)
    train, streamed = splits.train, splits.info["streamed"]
elif task == "ner":
    from pipelines.readers import conll
    from tasks import ner_data
    train, streamed = ner_data._build_ner(conll.ner_splits(path, seed=1, options={}), {})[0][
        "train"], False
else:
    from pipelines.readers import pairs
    from tasks import seq2seq_data
    train, streamed = seq2seq_data._build_seq2seq(pairs.pairs_splits(path, seed=1, options={}),
                                                  {})[0]["train"], False
loaded = time.perf_counter() - start
import numpy as np
n = int(train.reduce(np.int64(0), lambda count, _: count + 1))  # one pass, no eager loop
print(json.dumps({"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                       / 1024, 1), "load_s": round(loaded, 1),
                  "total_s": round(time.perf_counter() - start, 1), "train_examples": n,
                  "streamed": streamed}))
"""


def run_load(task: str, path: str, mode: str, timeout: float) -> dict:
    """``sources.load`` + one pass over train in a child process (``mode``: ``streamed`` or
    ``lists``): its peak RSS (MB), seconds, train examples."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _LOAD, task, path, mode], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"rc": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loads(size_mb: int, tmp: str | None, timeout: float) -> dict:
    """Streamed vs lists for a generated CoNLL and pairs file of ``size_mb`` MB."""
    root = tempfile.mkdtemp(prefix="load_memory-", dir=tmp)
    result = {"size_mb": size_mb}
    try:
        for task, kind in (("ner", "conll"), ("seq2seq", "pairs")):
            path = os.path.join(root, f"{task}.{kind}")
            result[f"{task}_file_mb"] = round(write_records(path, size_mb, kind) / 2 ** 20, 1)
            for mode in ("streamed", "lists"):
                result[f"{task}_{mode}"] = run_load(task, path, mode, timeout)
                print(f"{task} {mode}: {result[f'{task}_{mode}']}", flush=True)
            os.remove(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return result


def run_train(task: str, data: str, out: str, steps: int, vocab_examples: int,
              max_examples: int, timeout: float) -> dict:
    """One ``train`` in a child process: peak RSS (MB), seconds, return code."""
    cmd = [sys.executable, "-m", f"tasks.{task}", "train", "--data", data, "--output", out,
           "--epochs", "1", "--quiet", "--max-examples", str(max_examples),
           "--set", f"steps_per_epoch={steps}", "--set", f"vocab_max_examples={vocab_examples}",
           *RUN[task]]
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    last = proc.stdout.strip().splitlines()[-1].split()
    maxrss_kb, rc = int(last[0]), int(last[1])
    if rc != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
    return {"peak_rss_mb": round(maxrss_kb / 1024, 1), "seconds": round(seconds, 1), "rc": rc}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", default="100,1024", help="corpus sizes in MB")
    parser.add_argument("--tasks", default="sentiment,char_generation")
    parser.add_argument("--with-3gb", action="store_true", help="also train on a 3 GB text")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--vocab-examples", type=int, default=20000)
    parser.add_argument("--max-examples", type=int, default=20000,
                        help="training examples read per run (0: all; slow on big corpora)")
    parser.add_argument("--tmp", default=None, help="where the corpora go (default: system tmp)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--loads", action="store_true",
                        help="only ner/seq2seq load + one train pass, streamed vs lists")
    parser.add_argument("--load-mb", type=int, default=100, help="file size for --loads")
    args = parser.parse_args(argv)
    if args.loads:
        return loads(args.load_mb, args.tmp, args.timeout)
    sizes = [int(s) for s in args.sizes_mb.split(",") if s]
    root = tempfile.mkdtemp(prefix="task_memory-", dir=args.tmp)
    result = {"sizes_mb": sizes, "max_examples": args.max_examples, "steps": args.steps,
              "peak_rss_mb": {}, "seconds": {}, "ratio": {}, "goal_ratio": 1.5}
    try:
        plan = [(task, size) for task in args.tasks.split(",") for size in sizes]
        if args.with_3gb:
            plan.append(("char_generation", 3072))
        for task, size in plan:
            kind = "csv" if task == "sentiment" else "txt"
            path = os.path.join(root, f"{task}-{size}.{kind}")
            write_corpus(path, size, kind)
            run = run_train(task, path, os.path.join(root, f"run-{task}-{size}"), args.steps,
                            args.vocab_examples, args.max_examples, args.timeout)
            print(f"{task} {size} MB: {run}", flush=True)
            key = f"{task}_{size}mb"
            result["peak_rss_mb"][key] = run["peak_rss_mb"] if run["rc"] == 0 else None
            result["seconds"][key] = run["seconds"]
            if size == 3072:
                result["trains_3gb_text"] = run["rc"] == 0
            os.remove(path)
            shutil.rmtree(os.path.join(root, f"run-{task}-{size}"), ignore_errors=True)
        for task in args.tasks.split(","):
            peaks = [result["peak_rss_mb"].get(f"{task}_{s}mb") for s in (min(sizes), max(sizes))]
            if len(sizes) > 1 and all(peaks):
                result["ratio"][task] = round(peaks[1] / peaks[0], 3)
        # None: no ratio to judge (a single size).
        result["meets_goal"] = all(r <= result["goal_ratio"] for r in result["ratio"].values()) \
            if result["ratio"] else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
