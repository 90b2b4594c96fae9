"""Reusable Keras layers (import each from its module; this file imports nothing).

* :mod:`~models.layers.cells`: ``PeepholeLSTMCell`` (one timestep).
* :mod:`~models.layers.peephole_kernels`: the fused whole-sequence peephole loop.
* :mod:`~models.layers.peephole_lstm`: ``PeepholeLSTM`` (the sequence layer).
* :mod:`~models.layers.stacked`: ``StackedBidirectional`` over any of the ``CELLS``.
* :mod:`~models.layers.crf`: linear-chain ``CRF`` and ``CRFModel``.
* :mod:`~models.layers.attention`: ``BahdanauAttention``, ``LuongAttention``.
* :mod:`~models.layers.document_context`: pooling a document's repeated tokens.
* :mod:`~models.layers.embeddings`: reading pretrained word vectors into an embedding matrix.
* :mod:`~models.layers.char_lm_features`: a char LM's states at word boundaries (NER features).
"""
