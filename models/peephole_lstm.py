"""PeepholeLSTM: the sequence layer for :class:`models.cells.PeepholeLSTMCell`.

Same API as ``keras.layers.LSTM`` (return_sequences, return_state, go_backwards, stateful,
unroll, masking, initial_state), but the time loop is restructured for speed:

* the input projection ``x @ kernel + bias`` is one matmul over all timesteps, outside the
  recurrence, so the loop body only does ``h @ recurrent_kernel`` plus elementwise gate math;
* the loop is ``keras.ops.scan`` (a plain while loop that XLA compiles well), or a Python loop
  when ``unroll=True``;
* input dropout uses one mask per sequence (shared by all timesteps and gates, as the cuDNN
  path of ``keras.layers.LSTM``) and recurrent dropout one mask on ``h`` per sequence.
"""

from __future__ import annotations

import keras
from keras import ops

from models.cells import CELL_ARGS, PACKAGE, PeepholeLSTMCell


class _Projected:
    """Per-call tensors the cell's step needs when its inputs are already projected.

    A plain object (not a tuple) so Keras' attribute tracking leaves it alone.
    """

    def __init__(self, recurrent_kernel, peephole_kernel, recurrent_keep):
        self.recurrent_kernel = recurrent_kernel
        self.peephole_kernel = peephole_kernel
        self.recurrent_keep = recurrent_keep


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTM(keras.layers.RNN):
    """Peephole LSTM over a whole sequence (``keras.layers.LSTM`` is to ``LSTMCell``).

    Args:
        units: positive int, size of the hidden and cell state.
        activation, recurrent_activation, use_peepholes, use_bias, unit_forget_bias,
        *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, cell_clip,
        seed: forwarded to :class:`~models.cells.PeepholeLSTMCell` (see there).
        activity_regularizer: regulariser on the layer output.
        return_sequences: return the whole output sequence, not only the last output.
        return_state: also return the final ``h`` and ``c``.
        go_backwards: process the sequence in reverse; like Keras, the returned sequence is
            then in processing (reversed) order.
        stateful: carry the final states of batch ``i`` into batch ``i`` of the next call
            (static batch size required); ``reset_state()`` zeroes them.
        unroll: Python-unroll the time loop (static, short sequences only).
        zero_output_for_mask: output zeros (not the previous output) at masked timesteps;
            ``keras.layers.Bidirectional`` sets it to ``return_sequences``.

    Call arguments:
        sequences: [batch, time, features].
        mask: optional bool [batch, time]; masked steps keep the previous states.
        training: enables dropout.
        initial_state: optional ``[h0, c0]``, each [batch, units].

    Returns:
        [batch, time, units] if ``return_sequences`` else [batch, units]; with
        ``return_state`` the list ``[output, h, c]`` (h, c: [batch, units]). All in the compute
        dtype of the layer's policy (variables stay float32).

    Weights live on ``layer.cell`` (``kernel``, ``recurrent_kernel``, ``bias``,
    ``peephole_kernel``) in the layout documented in :mod:`models.cells`.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_peepholes=True,
        use_bias=True,
        unit_forget_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="glorot_uniform",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        peephole_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        cell_clip=None,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        cell = PeepholeLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_peepholes=use_peepholes,
            use_bias=use_bias,
            unit_forget_bias=unit_forget_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            peephole_initializer=peephole_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            peephole_regularizer=peephole_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            peephole_constraint=peephole_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            cell_clip=cell_clip,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="peephole_lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self):
        return self.cell.units

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask,
                            training=training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Projects all timesteps at once, then runs Keras' own time loop on the projections.

        Reusing ``keras.layers.RNN.inner_loop`` keeps the exact Keras semantics for masks,
        ``go_backwards``, ``unroll`` and ``zero_output_for_mask``, and its backend loop
        (a bounded ``while_loop`` on TensorFlow) compiles under XLA, unlike ``ops.scan``.
        """
        cell = self.cell
        dtype = cell.compute_dtype
        sequences = ops.cast(sequences, dtype)
        kernel, recurrent_kernel, bias, peephole = cell.cast_weights(dtype)
        if training and cell.dropout > 0:
            # One mask per sequence, shared by every timestep and gate.
            keep = cell.dropout_mask(sequences[:, 0, :], cell.dropout)
            sequences = sequences * ops.expand_dims(keep, 1)
        rec_keep = None
        if training and cell.recurrent_dropout > 0:
            state = initial_state[0] if keras.tree.is_nested(initial_state) else initial_state
            rec_keep = cell.dropout_mask(state, cell.recurrent_dropout)
        # One [batch*time, features] x [features, 4*units] GEMM instead of one per step.
        projected = cell.project_inputs(sequences, kernel, bias)
        cell.fast_path = _Projected(recurrent_kernel, peephole, rec_keep)
        try:
            return super().inner_loop(projected, initial_state, mask, training=training)
        finally:
            cell.fast_path = None

    def get_config(self):
        cell_config = self.cell.get_config()
        config = {"units": self.units}
        config.update({k: cell_config[k] for k in CELL_ARGS})
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
