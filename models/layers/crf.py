"""Linear-chain conditional random field written with ``keras.ops`` only.

Shapes: ``B`` batch, ``T`` time steps, ``K`` tags. ``potentials`` [B, T, K] are per-token tag
scores (logits), ``transitions[i, j]`` [K, K] the score of tag ``j`` following tag ``i``,
``start``/``end`` [K] the scores of a sentence beginning / ending with a tag. ``mask`` [B, T] is
True at real tokens; masks must be right-padded (a prefix of True values per row), which is
what ``mask_zero`` embeddings of right-padded batches produce. A row with no tokens scores 0.

Pieces:

* :func:`crf_log_likelihood` (= gold path score - log partition via the forward algorithm in
  log space with ``logsumexp``) and :func:`viterbi_decode`; both loop with ``keras.ops.scan``
  so they trace inside ``tf.function`` / XLA with a dynamic ``T``.
* :func:`allowed_transitions`: which IOB2/BIOES transitions are valid for a list of tag names.
* :class:`CRF`: layer owning the transitions; ``call`` passes the potentials through (float32)
  so a model's output stays the potentials, ``decode`` runs Viterbi.
* :class:`CRFModel`: a functional ``keras.Model`` whose ``compute_loss`` is the mean negative
  log-likelihood of its CRF layer, so ``model.fit`` works unchanged (compile without a loss).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Score added to forbidden transitions. Finite (not -inf) so logsumexp and its gradient stay
# NaN-free even if every path of a row were forbidden; 1e4 dwarfs any learned score.
FORBIDDEN = -1e4
SCHEMES = ("IOB2", "BIOES")
_PREFIX_ALIASES = {"U": "S", "L": "E"}  # BILOU spellings of BIOES


def _parse_tag(name: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``; ``"<pad>"`` -> special."""
    if name == "O":
        return "O", None
    if name[:1] + name[-1:] in ("<>", "[]"):
        return "special", None
    prefix, sep, kind = name.partition("-")
    prefix = _PREFIX_ALIASES.get(prefix, prefix)
    if not sep or not kind or prefix not in ("B", "I", "E", "S"):
        raise ValueError(
            f"tag name {name!r} is not 'O', '<special>' or PREFIX-TYPE with PREFIX in B/I/E/S")
    return prefix, kind


def infer_scheme(tag_names) -> str:
    """``"BIOES"`` if any tag uses an E-/S- (or L-/U-) prefix, else ``"IOB2"``."""
    prefixes = {_parse_tag(n)[0] for n in tag_names}
    return "BIOES" if prefixes & {"E", "S"} else "IOB2"


def allowed_transitions(tag_names, scheme: str | None = None):
    """Valid transitions of a tag set under IOB2 or BIOES.

    Special tags (``<pad>``, ``[PAD]``) can never be entered: they exist only for padding.

    Args:
        tag_names: list of K tag strings (``"O"``, ``"B-PER"``, ...), index = tag id.
        scheme: ``"IOB2"``, ``"BIOES"`` or None to infer from the prefixes.

    Returns:
        ``(transitions [K, K], start [K], end [K])`` boolean numpy arrays, True = allowed.
    """
    scheme = infer_scheme(tag_names) if scheme is None else str(scheme).upper()
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r}; expected one of {SCHEMES}")
    tags = [_parse_tag(str(n)) for n in tag_names]
    if scheme == "IOB2" and any(p in ("E", "S") for p, _ in tags):
        raise ValueError(f"tag names {list(tag_names)} use E-/S- prefixes but scheme='IOB2'")

    def allowed(frm, to) -> bool:
        (fp, fk), (tp, tk) = frm, to  # frm is ("start", None) at the sentence start
        if tp == "special":
            return False
        if scheme == "IOB2":
            return tp != "I" or (fp in ("B", "I") and fk == tk)
        if fp in ("B", "I"):  # an entity is open and must continue with I-/E- same type
            return tp in ("I", "E") and fk == tk
        return tp in ("O", "B", "S")

    start = np.array([allowed(("start", None), t) for t in tags])
    trans = np.array([[allowed(f, t) for t in tags] for f in tags]).reshape(len(tags), -1)
    ends = ("O", "B", "I", "E", "S") if scheme == "IOB2" else ("O", "E", "S")
    end = np.array([p in ends for p, _ in tags])
    return trans, start, end


def _prepare(potentials, mask):
    """float32 potentials and a float32 [B, T] mask (all ones when None)."""
    potentials = ops.cast(potentials, "float32")
    if mask is None:
        mask = ops.ones(ops.shape(potentials)[:2], dtype="float32")
    return potentials, ops.cast(mask, "float32")


def _boundary(vec, num_tags):
    return ops.zeros((num_tags,), "float32") if vec is None else ops.cast(vec, "float32")


def _time_major_steps(potentials, m):
    """Steps 1..T-1 as one [T-1, B, K + 1] tensor: potentials with the mask as last column.

    One tensor rather than a (potentials, mask) tuple because keras' TF ``scan`` fails on
    several ``xs`` whose time dimension is not static (as in a serving signature).
    """
    steps = ops.concatenate([potentials[:, 1:], m[:, 1:, None]], axis=-1)
    return ops.transpose(steps, (1, 0, 2))


def crf_sequence_score(potentials, tags, transitions, mask=None, start=None, end=None):
    """Unnormalised score of given tag paths.

    Args:
        potentials: [B, T, K] float.
        tags: [B, T] int; values at padded positions are ignored.
        transitions: [K, K]; start, end: [K] or None (zero).
        mask: [B, T] bool/int, right-padded; None = all valid.

    Returns:
        [B] float32.
    """
    potentials, m = _prepare(potentials, mask)
    num_tags = ops.shape(potentials)[-1]
    transitions = ops.cast(transitions, "float32")
    # Padded positions may carry any id (even -1); send them to tag 0 so gathers stay legal.
    tags = ops.where(m > 0, ops.cast(tags, "int32"), 0)
    unary = ops.take_along_axis(potentials, tags[..., None], axis=-1)[..., 0]
    score = ops.sum(unary * m, axis=1)
    pair = tags[:, :-1] * num_tags + tags[:, 1:]
    binary = ops.take(ops.reshape(transitions, (-1,)), pair)
    score = score + ops.sum(binary * m[:, 1:], axis=1)  # prefix mask: m[t] implies m[t-1]
    lengths = ops.cast(ops.sum(m, axis=1), "int32")
    nonempty = ops.cast(lengths > 0, "float32")
    first = tags[:, 0]
    last = ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    score = score + ops.take(_boundary(start, num_tags), first) * nonempty
    return score + ops.take(_boundary(end, num_tags), last) * nonempty


def crf_log_norm(potentials, transitions, mask=None, start=None, end=None):
    """Log partition function log Z (forward algorithm in log space).

    Args: as :func:`crf_sequence_score` without ``tags``.

    Returns:
        [B] float32; 0 for rows without tokens.
    """
    potentials, m = _prepare(potentials, mask)
    num_tags = ops.shape(potentials)[-1]
    transitions = ops.cast(transitions, "float32")
    alpha = _boundary(start, num_tags)[None, :] + potentials[:, 0]
    steps = _time_major_steps(potentials, m)

    def step(alpha, inputs):
        pot, valid = inputs[..., :-1], inputs[..., -1:]
        # alpha'[j] = logsumexp_i(alpha[i] + trans[i, j]) + pot[j]
        new = ops.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + pot
        alpha = ops.where(valid > 0, new, alpha)  # padded steps carry alpha unchanged
        return alpha, alpha  # keras' TF scan needs ys shaped like the carry

    alpha, _ = ops.scan(step, alpha, steps)
    log_z = ops.logsumexp(alpha + _boundary(end, num_tags)[None, :], axis=1)
    return log_z * ops.cast(ops.sum(m, axis=1) > 0, "float32")


def crf_log_likelihood(potentials, tags, transitions, mask=None, start=None, end=None):
    """log p(tags | potentials) per sequence, [B] float32 (<= 0). Negate for the loss."""
    return (crf_sequence_score(potentials, tags, transitions, mask, start, end)
            - crf_log_norm(potentials, transitions, mask, start, end))


def viterbi_decode(potentials, transitions, mask=None, start=None, end=None):
    """Highest-scoring tag paths.

    Args: as :func:`crf_log_norm`.

    Returns:
        ``(tags [B, T] int32, scores [B] float32)``; tags are 0 at padded positions.
    """
    potentials, m = _prepare(potentials, mask)
    num_tags = ops.shape(potentials)[-1]
    transitions = ops.cast(transitions, "float32")
    score = _boundary(start, num_tags)[None, :] + potentials[:, 0]
    steps = _time_major_steps(potentials, m)
    identity = ops.arange(num_tags, dtype="int32")[None, :]

    def forward(carry, inputs):
        score, _ = carry
        pot, valid = inputs[..., :-1], inputs[..., -1:]
        cand = score[:, :, None] + transitions[None]  # [B, K_from, K_to]
        best_prev = ops.cast(ops.argmax(cand, axis=1), "int32")
        new = ops.max(cand, axis=1) + pot
        # Padded steps keep the score and point each tag to itself, so backtracking walks
        # through them unchanged.
        score = ops.where(valid > 0, new, score)
        backptr = ops.where(valid > 0, best_prev, identity + ops.zeros_like(best_prev))
        return (score, backptr), (score, backptr)

    init = (score, ops.zeros(ops.shape(score), dtype="int32") + identity)
    (score, _), (_, backptrs) = ops.scan(forward, init, steps)
    final = score + _boundary(end, num_tags)[None, :]
    best_last = ops.cast(ops.argmax(final, axis=1), "int32")
    best_score = ops.max(final, axis=1)

    def backward(tag, backptr):
        prev = ops.take_along_axis(backptr, tag[:, None], axis=1)[:, 0]
        return prev, tag  # emits the tag at step t, carries the tag at t-1

    first, later = ops.scan(backward, best_last, backptrs, reverse=True)
    path = ops.concatenate([first[:, None], ops.transpose(later, (1, 0))], axis=1)
    path = path * ops.cast(m, "int32")
    return path, best_score * ops.cast(ops.sum(m, axis=1) > 0, "float32")


@keras.saving.register_keras_serializable(package="recurrent_suite")
class CRF(keras.layers.Layer):
    """Linear-chain CRF head: owns the transition scores and passes the potentials through.

    The NLL needs the gold tags, so it is not computed in ``call``: :class:`CRFModel` computes
    it in ``compute_loss`` with :meth:`log_likelihood`. Inference uses :meth:`decode`.
    All math is float32 whatever the dtype policy (``autocast`` is off so float16 inputs and
    variables are never rounded on the way in).

    Args:
        num_tags: K, number of tags.
        use_boundary_transitions: learn start/end scores [K] as well as transitions [K, K].
        tag_names: K tag strings; when given, invalid transitions (e.g. ``O -> I-PER``) are
            forbidden in the loss and in decoding.
        scheme: ``"IOB2"``, ``"BIOES"`` or None (inferred from ``tag_names``).
        transitions_initializer: initializer of the learned scores.

    Call args:
        potentials: [B, T, K] tag scores.
        mask: [B, T] bool (propagated by Keras from ``mask_zero`` embeddings).
        decode: return Viterbi tags [B, T] int32 instead of the potentials.

    Returns:
        potentials [B, T, K] float32 (mask propagated), or tags [B, T] int32 if ``decode``.
    """

    def __init__(self, num_tags, use_boundary_transitions=True, tag_names=None, scheme=None,
                 transitions_initializer="zeros", **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if not isinstance(num_tags, (int, np.integer)) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
        self.num_tags = int(num_tags)
        self.use_boundary_transitions = bool(use_boundary_transitions)
        self.tag_names = None if tag_names is None else [str(t) for t in tag_names]
        self.scheme = scheme
        self.transitions_initializer = keras.initializers.get(transitions_initializer)
        self.supports_masking = True
        k = self.num_tags
        if self.tag_names is not None:
            if len(self.tag_names) != k:
                raise ValueError(
                    f"tag_names has {len(self.tag_names)} names but num_tags={num_tags}")
            trans, start, end = allowed_transitions(self.tag_names, scheme)
            if not self.use_boundary_transitions:  # start/end rules need the boundary terms
                start, end = np.ones(k, bool), np.ones(k, bool)
        elif scheme is not None and str(scheme).upper() not in SCHEMES:
            raise ValueError(f"scheme={scheme!r}; expected one of {SCHEMES}")
        else:
            trans, start, end = np.ones((k, k), bool), np.ones(k, bool), np.ones(k, bool)
        self._bias = [np.where(a, 0.0, FORBIDDEN).astype("float32") for a in (trans, start, end)]

    def build(self, input_shape=None):
        k = self.num_tags
        if input_shape is not None and input_shape[-1] not in (None, k):
            raise ValueError(f"CRF(num_tags={k}) got potentials with last dim {input_shape[-1]}")
        self.transitions = self.add_weight(
            shape=(k, k), initializer=self.transitions_initializer, name="transitions",
            dtype="float32")
        if self.use_boundary_transitions:
            self.start_transitions, self.end_transitions = (self.add_weight(
                shape=(k,), initializer=self.transitions_initializer, name=f"{w}_transitions",
                dtype="float32") for w in ("start", "end"))

    def constrained_transitions(self):
        """``(transitions [K, K], start [K] | None, end [K] | None)`` with forbidden moves
        pushed to -1e4: the scores the loss and the decoder actually use."""
        trans = ops.cast(self.transitions, "float32") + self._bias[0]
        if not self.use_boundary_transitions:
            return trans, None, None
        return (trans, ops.cast(self.start_transitions, "float32") + self._bias[1],
                ops.cast(self.end_transitions, "float32") + self._bias[2])

    def call(self, potentials, mask=None, decode=False):
        potentials = ops.cast(potentials, "float32")
        return self.decode(potentials, mask)[0] if decode else potentials

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_spec(self, potentials, mask=None, decode=False):
        shape, dtype = (potentials.shape[:2], "int32") if decode else (potentials.shape, "float32")
        return keras.KerasTensor(shape, dtype=dtype)

    def log_likelihood(self, potentials, tags, mask=None):
        """[B] float32 log p(tags | potentials) under the constrained transitions."""
        trans, start, end = self.constrained_transitions()
        return crf_log_likelihood(potentials, tags, trans, mask, start, end)

    def decode(self, potentials, mask=None):
        """Viterbi: ``(tags [B, T] int32, scores [B] float32)``."""
        trans, start, end = self.constrained_transitions()
        return viterbi_decode(potentials, trans, mask, start, end)

    def get_config(self):
        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "use_boundary_transitions": self.use_boundary_transitions,
            "tag_names": self.tag_names,
            "scheme": self.scheme,
            "transitions_initializer": keras.initializers.serialize(
                self.transitions_initializer),
        }


# ------------------------------------------------------------------------------ model


def _keras_mask(tensor):
    # Keras attaches the propagated mask to layer outputs as `_keras_mask` (the same attribute
    # its own losses read); keras has no public getter for it.
    return getattr(tensor, "_keras_mask", None)


def find_crf(model) -> CRF:
    """The single CRF layer inside ``model`` (searched recursively)."""
    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, CRF):
            found.append(layer)
        elif hasattr(layer, "layers"):
            stack.extend(layer.layers)
    if len(found) != 1:
        raise ValueError(f"{model.name}: expected exactly one CRF layer, found {len(found)}")
    return found[0]


@keras.saving.register_keras_serializable(package="recurrent_suite")
class CRFModel(keras.Model):
    """Functional model whose single output is CRF potentials and whose loss is the CRF NLL.

    Build it like ``keras.Model(inputs, outputs)``, with ``outputs = CRF(...)(potentials)``;
    compile it WITHOUT a loss (metrics such as token accuracy on the potentials are fine).
    ``y`` is the gold tags [B, T] (or [B, T, 1]). The mask comes from the propagated Keras
    mask of the output, else from a [B, T] ``sample_weight``; a [B] ``sample_weight`` weights
    whole sentences. The loss is the weighted mean NLL per sentence plus any layer losses
    (regularisers). Compiled metrics see the Viterbi path as one-hot scores, weighted by the
    mask: accuracy/F1 metrics measure what inference outputs, not the raw potentials.
    """

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        mask = _keras_mask(y_pred)
        decoded = ops.one_hot(find_crf(self).decode(y_pred, mask)[0], ops.shape(y_pred)[-1])
        if mask is not None:
            weight = ops.cast(mask, "float32")
            if sample_weight is not None:
                sw = ops.cast(sample_weight, "float32")
                weight = weight * (sw if len(sw.shape) == 2 else sw[:, None])
            sample_weight = weight
        return super().compute_metrics(x, y, decoded, sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, (dict, list, tuple)):
            raise ValueError(f"{self.name}: CRFModel needs a single potentials output")
        if getattr(self, "loss", None) is not None:
            raise ValueError(
                f"{type(self).__name__} computes the CRF negative log-likelihood itself; "
                f"compile it without a loss (got loss={self.loss!r})")
        crf = find_crf(self)
        tags = y
        if len(tags.shape) == 3:
            tags = ops.squeeze(tags, -1)
        mask = _keras_mask(y_pred)
        weights = None
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            if len(sample_weight.shape) == 2:
                if mask is None:
                    mask = sample_weight > 0
            else:
                weights = ops.reshape(sample_weight, (-1,))
        nll = -crf.log_likelihood(y_pred, tags, mask)
        if weights is not None:
            nll = nll * weights
        loss = ops.mean(nll)
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), "float32")
        return loss
