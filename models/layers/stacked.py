"""StackedBidirectional: a deep (bi)directional RNN built from Keras' recurrent layers.

Standard cells map to ``keras.layers.LSTM`` / ``GRU`` / ``SimpleRNN`` with their default
activations and no forced unroll, so TensorFlow takes the cuDNN kernel on GPU;
``"peephole_lstm"`` maps to :class:`models.layers.peephole_lstm.PeepholeLSTM`.
"""

from __future__ import annotations

import keras
from keras import ops

from models.layers.cells import PACKAGE, check_rate, check_units
from models.layers.peephole_lstm import PeepholeLSTM

CELLS = ("lstm", "peephole_lstm", "gru", "simple_rnn")
MERGE_MODES = ("concat", "sum", "ave", "mul")
_LAYERS = {
    "lstm": keras.layers.LSTM,
    "peephole_lstm": PeepholeLSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}


def states_per_cell(cell: str) -> int:
    """State tensors of one direction of one layer: 2 (h, c) for LSTM types, else 1 (h)."""
    if cell not in CELLS:
        raise ValueError(f"`cell` must be one of {CELLS}, got {cell!r}")
    return 2 if cell in ("lstm", "peephole_lstm") else 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class StackedBidirectional(keras.layers.Layer):
    """``num_layers`` recurrent layers on top of each other, each optionally bidirectional.

    Layer ``l`` reads the (merged) output sequence of layer ``l - 1``. Between layers,
    ``dropout`` is applied to the sequence; with ``residual=True`` every layer after the first
    adds its input to its output (GNMT style; the residual uses the input before dropout), so
    those layers' output width (``2 * units`` for ``concat``, else ``units``) must equal their
    input width.

    Args:
        units: int, or a list with one int per layer (then ``num_layers`` may be left at 1
            or must equal its length).
        num_layers: number of stacked layers.
        cell: ``"lstm"``, ``"peephole_lstm"``, ``"gru"`` or ``"simple_rnn"``.
        merge_mode: how forward and backward outputs combine: ``"concat"``, ``"sum"``,
            ``"ave"`` or ``"mul"`` (ignored when ``bidirectional=False``).
        dropout: dropout rate on the sequence between layers (not on the stack's input).
        recurrent_dropout: recurrent dropout rate inside every recurrent layer.
        residual: add each layer's input sequence to its output sequence (layers
            1..num_layers-1; not the top layer when ``return_sequences=False``, whose output
            is one vector per sequence).
        return_sequences: return [batch, time, width] instead of the last step [batch, width].
        return_state: ``False``, ``True`` (top layer's final states) or ``"all"`` (every
            layer's final states); see *Returns*.
        bidirectional: False gives a plain deep unidirectional RNN (used by the generators).
        rnn_kwargs: optional dict of extra constructor arguments for every recurrent layer
            (e.g. ``{"use_peepholes": False}`` or ``{"kernel_regularizer": "l2"}``); must be
            serializable.
        seed: seed of the dropout masks (between layers and inside the recurrent layers).

    Call arguments:
        inputs: [batch, time, features].
        mask: optional bool [batch, time]; propagates through every layer (masked steps keep
            their states), so an ``Embedding(mask_zero=True)`` in front makes padded and
            unpadded runs agree on the valid steps.
        training: enables both dropouts.
        initial_state: optional flat list with every layer's initial states, layer 0 first,
            ``states_per_layer`` tensors per layer in the order of *Returns* (e.g. an LSTM
            stack: ``[h_0, c_0, h_1, c_1, ...]``; bidirectional: ``[fw_h_0, fw_c_0, bw_h_0,
            bw_c_0, fw_h_1, ...]``), each [batch, units_l]. It is exactly what
            ``return_state="all"`` returns, so a step model can carry the whole stack's state
            one timestep at a time (call with inputs [batch, 1, features]).

    Returns:
        ``return_state=False``: the output, [batch, time, width] or [batch, width] where
        width is ``2 * units[-1]`` for bidirectional ``concat``, else ``units[-1]``.

        ``return_state=True``: ``[outputs, *states]`` with the TOP layer's final states in
        ``keras.layers.Bidirectional``'s order, ready to initialise a decoder:
        LSTM types ``[outputs, fw_h, fw_c, bw_h, bw_c]``; GRU / simple RNN
        ``[outputs, fw_h, bw_h]``; with ``bidirectional=False`` ``[outputs, h, c]`` or
        ``[outputs, h]``. Each state is [batch, units[-1]]; a decoder of width
        ``2 * units`` can be initialised with ``concatenate([fw_h, bw_h])`` (and likewise c).

        ``return_state="all"``: ``[outputs, *states of layer 0, *states of layer 1, ...]``,
        ``states_per_layer`` tensors per layer, in the same order as ``initial_state``.

    Attributes:
        states_per_layer: state tensors per layer (2 for LSTM types, 1 otherwise, doubled
            when bidirectional).
        layer_units: list of per-layer units.
        rnn_layers: the per-layer ``Bidirectional`` / recurrent layers.
    """

    def __init__(
        self,
        units,
        num_layers=1,
        cell="lstm",
        merge_mode="concat",
        dropout=0.0,
        recurrent_dropout=0.0,
        residual=False,
        return_sequences=False,
        return_state=False,
        bidirectional=True,
        rnn_kwargs=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_units(num_layers, "num_layers")
        if isinstance(units, (list, tuple)):
            if not units:
                raise ValueError(f"`units` must not be an empty list, got {units!r}")
            if num_layers not in (1, len(units)):
                raise ValueError(f"`units` has {len(units)} entries but num_layers={num_layers}")
            layer_units = [check_units(u) for u in units]
        else:
            layer_units = [check_units(units)] * num_layers
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {CELLS}, got {cell!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"`merge_mode` must be one of {MERGE_MODES}, got {merge_mode!r}")
        if return_state not in (False, True, "all"):
            raise ValueError(f"`return_state` must be False, True or 'all', got {return_state!r}")
        if rnn_kwargs is not None and not isinstance(rnn_kwargs, dict):
            raise ValueError(f"`rnn_kwargs` must be a dict or None, got {rnn_kwargs!r}")
        self.units = list(units) if isinstance(units, (list, tuple)) else units
        self.layer_units = layer_units
        self.num_layers = len(layer_units)
        self.cell = cell
        self.merge_mode = merge_mode
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.residual = bool(residual)
        self.return_sequences = bool(return_sequences)
        self.return_state = return_state
        self.bidirectional = bool(bidirectional)
        self.rnn_kwargs = dict(rnn_kwargs or {})
        self.seed = seed
        self.supports_masking = True

        rnn_cls = _LAYERS[cell]
        self.rnn_layers = []
        self.dropout_layers = []
        for i, u in enumerate(layer_units):
            top = i == self.num_layers - 1
            # Every layer returns its states: free to compute and needed for "all" and for
            # threading initial states; unused ones are dropped in call().
            rnn = rnn_cls(
                u,
                return_sequences=self.return_sequences if top else True,
                return_state=True,
                recurrent_dropout=self.recurrent_dropout,
                seed=None if seed is None else seed + 2 * i,
                dtype=self.dtype_policy,
                name=f"{cell}_{i}",
                **self.rnn_kwargs,
            )
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(rnn, merge_mode=merge_mode,
                                                 dtype=self.dtype_policy, name=f"bidirectional_{i}")
            self.rnn_layers.append(rnn)
            self.dropout_layers.append(
                keras.layers.Dropout(self.dropout, seed=None if seed is None else seed + 2 * i + 1,
                                     dtype=self.dtype_policy, name=f"dropout_{i}")
                if i > 0 and self.dropout > 0 else None)

    @property
    def states_per_layer(self) -> int:
        return states_per_cell(self.cell) * (2 if self.bidirectional else 1)

    def _output_width(self, i: int) -> int:
        u = self.layer_units[i]
        return 2 * u if self.bidirectional and self.merge_mode == "concat" else u

    def _has_residual(self, i: int) -> bool:
        # A top layer that returns one vector per sequence has no matching input to add.
        top_returns_vector = i == self.num_layers - 1 and not self.return_sequences
        return self.residual and i > 0 and not top_returns_vector

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"StackedBidirectional expects [batch, time, features], got {shape}")
        for i, rnn in enumerate(self.rnn_layers):
            if self._has_residual(i) and shape[-1] != self._output_width(i):
                raise ValueError(
                    f"residual=True needs layer {i}'s output width {self._output_width(i)} to "
                    f"equal its input width {shape[-1]}; use equal per-layer units")
            if self.dropout_layers[i] is not None:
                self.dropout_layers[i].build(shape)
            rnn.build(shape)
            shape = shape[:2] + (self._output_width(i),)
        self.built = True

    def _split_initial_state(self, initial_state):
        if initial_state is None:
            return [None] * self.num_layers
        flat = list(initial_state) if isinstance(initial_state, (list, tuple)) else [
            initial_state]
        expected = self.num_layers * self.states_per_layer
        if len(flat) != expected:
            raise ValueError(
                f"initial_state must hold {expected} tensors ({self.num_layers} layers x "
                f"{self.states_per_layer} states, layer 0 first), got {len(flat)}")
        k = self.states_per_layer
        return [flat[i * k:(i + 1) * k] for i in range(self.num_layers)]

    def call(self, inputs, mask=None, training=None, initial_state=None):
        per_layer = self._split_initial_state(initial_state)
        x = inputs
        all_states = []
        for i, rnn in enumerate(self.rnn_layers):
            layer_in = x
            if self.dropout_layers[i] is not None:
                x = self.dropout_layers[i](x, training=training)
            out = rnn(x, mask=mask, training=training, initial_state=per_layer[i])
            x, states = out[0], list(out[1:])
            if self._has_residual(i):
                x = x + ops.cast(layer_in, x.dtype)
            all_states.append(states)
        if self.return_state == "all":
            return [x] + [s for states in all_states for s in states]
        if self.return_state:
            return [x] + all_states[-1]
        return x

    def compute_mask(self, inputs, mask=None):
        out_mask = mask if self.return_sequences else None
        if not self.return_state:
            return out_mask
        n = self.states_per_layer * (self.num_layers if self.return_state == "all" else 1)
        return [out_mask] + [None] * n

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, time = inputs_shape[0], inputs_shape[1]
        width = self._output_width(self.num_layers - 1)
        out = (batch, time, width) if self.return_sequences else (batch, width)
        if not self.return_state:
            return out
        per_dir = states_per_cell(self.cell)
        layers = range(self.num_layers) if self.return_state == "all" else [self.num_layers - 1]
        states = [(batch, self.layer_units[i]) for i in layers
                  for _ in range(per_dir * (2 if self.bidirectional else 1))]
        return [out] + states

    def get_config(self):
        config = {
            "units": self.units,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "merge_mode": self.merge_mode,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "bidirectional": self.bidirectional,
            "rnn_kwargs": self.rnn_kwargs,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
