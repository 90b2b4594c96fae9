"""Decoding from step functions (import each from its module; this file imports nothing).

* :mod:`~models.decoding.sampling`: temperature / top-k / top-p sampling from logits.
* :mod:`~models.decoding.beam_search`: batched greedy decoding and beam search.
"""
