"""tasks.char_lm_likelihood: the events a char LM is charged for (every character and the
closing line break of each text) and the per-word conversion, on a model whose every
prediction is uniform (all weights 0), where the answer is exact: -events * ln(V)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from models.language_model import build_char_language_model
from pipelines.vocab import CharVocabulary
from tasks.char_generation import CharPreprocessor
from tasks.char_lm_likelihood import per_word_perplexity, text_log_likelihood


def _uniform_run(reverse=False):
    vocab = CharVocabulary(add_start_end=True)
    vocab.adapt(tf.data.Dataset.from_tensor_slices(["the cat sat.\n", "a dog!\n"]))
    preprocessor = CharPreprocessor(vocab, "continuous", [], reverse=reverse)
    model = build_char_language_model(vocab.vocabulary_size, embedding_dim=4, units=5,
                                      num_layers=1)
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype))
    return model, preprocessor, vocab.vocabulary_size


@pytest.mark.parametrize("reverse", [False, True])
def test_every_character_and_the_line_end_are_scored_exactly(reverse):
    model, preprocessor, size = _uniform_run(reverse)
    texts = ["the cat sat.", "a dog!", "tac", "x"]  # "x": out of vocabulary, still an event
    log_prob, events = text_log_likelihood(model, preprocessor, texts, batch_size=3)
    assert events == sum(len(t) + 1 for t in texts)  # 12+1, 6+1, 3+1, 1+1
    assert log_prob == pytest.approx(-events * math.log(size), rel=1e-5)


def test_per_word_perplexity_divides_by_the_word_tokens():
    # "the cat sat ." + <eos>: 5 word-LM tokens; 13 char events at uniform 1/V.
    model, preprocessor, size = _uniform_run()
    log_prob, events = text_log_likelihood(model, preprocessor, ["the cat sat ."])
    assert events == 14
    assert per_word_perplexity(log_prob, 5) == pytest.approx(size ** (14 / 5), rel=1e-4)
    assert per_word_perplexity(-math.log(100.0) * 3, 3) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="word_tokens"):
        per_word_perplexity(-1.0, 0)
    with pytest.raises(ValueError, match="line break"):
        text_log_likelihood(model, preprocessor, ["two\nlines"])
