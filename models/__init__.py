"""Keras 3 models of the suite (keras + keras.ops only; never tensorflow, never tasks/).

* :mod:`models.layers`: reusable layers (peephole LSTM cell and sequence layer, stacked
  bidirectional RNN, CRF, attention, document context, pretrained word vectors).
* :mod:`models.decoding`: sampling from logits, greedy and beam search.
* Task model builders, one module each: :mod:`models.classifier`, :mod:`models.tagger`,
  :mod:`models.language_model`, :mod:`models.music_language_model`, :mod:`models.seq2seq`;
  :mod:`models.optimizers` (the runner's Adam).
* :mod:`models.keras_private`: the only place that touches private Keras APIs.

Imports point down this list (builders -> decoding/layers -> keras), never back up: the package
``__init__`` files import nothing, so importing one layer does not load the others.
Every class is registered under ``recurrent_suite>ClassName``; the name does not depend on the
module, so ``.keras`` files survive a module move (tests/models/test_saved_v0_1.py).
"""
