"""``--set vocab_max_examples=N`` fits every task's preprocessor on the first N training
examples only (one bounded pass over a streamed corpus), not only sentiment's and char's."""

import os

import numpy as np

from pipelines.readers.music import write_midi
from tasks import music_generation as mg
from tasks import ner
from tasks import seq2seq as s2s
from tasks.runner import config as config_lib

CONLL = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ner", "tiny_conll")


def _fit(task, config, **changes):
    config = config_lib.override(config, changes)
    return task.fit_preprocessor(config, task.load_splits(config))


def test_ner_vocabularies_are_fitted_on_the_first_examples():
    task, config = ner.NerTask(), config_lib.override(ner.NerConfig(), {"data": CONLL})
    full, capped = (_fit(task, config, vocab_max_examples=n) for n in (0, 2))
    first_two = [e["tokens"] for e in task.load_splits(config).train.take(2).as_numpy_iterator()]
    words = {t.decode().lower() for tokens in first_two for t in tokens}  # lowercase=True
    vocabulary = capped.words.get_vocabulary()
    assert words <= set(vocabulary) and len(vocabulary) <= len(words) + 3  # + special tokens
    assert len(vocabulary) < len(full.words.get_vocabulary())
    assert len(capped.chars.get_vocabulary()) < len(full.chars.get_vocabulary())


def test_seq2seq_vocabularies_are_fitted_on_the_first_examples():
    task = s2s.Seq2SeqTask()
    config = config_lib.override(s2s.Seq2SeqConfig(), {"max_examples": 64})
    full, capped = (_fit(task, config, vocab_max_examples=n) for n in (0, 1))
    assert capped.source_vocab.vocabulary_size < full.source_vocab.vocabulary_size
    assert capped.target_vocab.vocabulary_size <= full.target_vocab.vocabulary_size


def test_music_statistics_are_fitted_on_the_first_examples(tmp_path):
    for f in range(6):
        notes = np.array([[60 + f + i, 0.5 if i else 0.0, 0.5] for i in range(8)], np.float32)
        write_midi(notes, tmp_path / f"piece{f}.mid", unit="beats")
    task = mg.MusicGenerationTask()
    config = config_lib.override(mg.MusicGenerationConfig(), {"data": str(tmp_path),
                                                                "unit": "beats"})
    full, capped = (_fit(task, config, vocab_max_examples=n) for n in (0, 1))
    assert capped.unigram.sum() == 8 < full.unigram.sum()
