"""PeepholeLSTM: the sequence layer for :class:`models.layers.cells.PeepholeLSTMCell`.

Same API as ``keras.layers.LSTM`` (return_sequences, return_state, go_backwards, stateful,
unroll, masking, initial_state). The time loop picks one of three paths, all numerically
equivalent (tests compare values and gradients):

* **fused** (training, TensorFlow backend, default tanh/sigmoid activations, no unroll): the
  input projection ``x @ kernel + bias`` is one GEMM over all timesteps; the recurrence runs
  in ``keras.ops.scan`` with a hand-written backward pass whose weight gradients are single
  GEMMs over all timesteps (:mod:`models.layers.peephole_kernels`);
* **chunked** (otherwise, no unroll): Keras' own RNN loop (a bounded while loop, XLA-friendly)
  over chunks of ``time_chunk`` steps, each chunk projected by one GEMM and its steps
  unrolled, so the loop does 10x fewer iterations;
* **per step** (``unroll=True`` or ``time_chunk == 1``): Keras' loop over pre-projected
  inputs.

Input dropout uses one mask per sequence (shared by all timesteps and gates, like the cuDNN
path of ``keras.layers.LSTM``) and recurrent dropout one mask on ``h`` per sequence.
"""

from __future__ import annotations

import keras
from keras import ops

from models.layers.cells import CELL_ARGS, PACKAGE, PeepholeLSTMCell
from models.layers.peephole_kernels import fused_peephole_sequence


class _ProjectedStep:
    """Cell fast path for one timestep whose input is already ``x @ W + b`` [batch, 4U].

    A plain object (not a tuple) so Keras' attribute tracking leaves it alone.
    """

    def __init__(self, cell, recurrent_kernel, peepholes, recurrent_keep):
        self.cell = cell
        self.recurrent_kernel = recurrent_kernel
        self.peepholes = peepholes
        self.recurrent_keep = recurrent_keep

    def __call__(self, z_x, h, c):
        h_in = h if self.recurrent_keep is None else h * self.recurrent_keep
        h, c = self.cell.recurrence(z_x, h_in, c, self.recurrent_kernel, self.peepholes)
        return h, [h, c]


class _ChunkStep:
    """Cell fast path for ``chunk`` timesteps per loop iteration.

    Input [batch, chunk * features'] (features' = features + 1 when a 0/1 mask channel is
    appended); one GEMM projects the chunk, then the steps are unrolled. Output
    [batch, chunk * units]: the h after each step, in processing order.
    """

    def __init__(self, cell, chunk, features, has_mask, reverse, kernel, bias,
                 recurrent_kernel, peepholes, recurrent_keep):
        self.cell, self.chunk, self.features, self.has_mask = cell, chunk, features, has_mask
        self.reverse, self.kernel, self.bias = reverse, kernel, bias
        self.recurrent_kernel, self.peepholes = recurrent_kernel, peepholes
        self.recurrent_keep = recurrent_keep

    def __call__(self, inputs, h, c):
        x = ops.reshape(inputs, (-1, self.chunk, self.features + int(self.has_mask)))
        if self.has_mask:
            x, keep_step = x[..., :-1], x[..., -1:] > 0
        z = self.cell.project_inputs(x, self.kernel, self.bias)
        hs = []
        for k in reversed(range(self.chunk)) if self.reverse else range(self.chunk):
            h_in = h if self.recurrent_keep is None else h * self.recurrent_keep
            h_new, c_new = self.cell.recurrence(z[:, k], h_in, c, self.recurrent_kernel,
                                                self.peepholes)
            if self.has_mask:
                h_new = ops.where(keep_step[:, k], h_new, h)
                c_new = ops.where(keep_step[:, k], c_new, c)
            h, c = h_new, c_new
            hs.append(h)
        return ops.concatenate(hs, axis=-1), [h, c]


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTM(keras.layers.RNN):
    """Peephole LSTM over a whole sequence (``keras.layers.LSTM`` is to ``LSTMCell``).

    Args:
        units: positive int, size of the hidden and cell state.
        activation, recurrent_activation, use_peepholes, use_bias, unit_forget_bias,
        *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, cell_clip,
        seed: forwarded to :class:`~models.layers.cells.PeepholeLSTMCell` (see there).
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
    ``peephole_kernel``) in the layout documented in :mod:`models.layers.cells`.

    Tuning attributes (not serialized, like ``keras.layers.LSTM``'s ``use_cudnn``):
    ``use_fused_kernel`` (``"auto"`` or False), ``time_chunk`` (steps per iteration of the
    inference loop, default 10) and ``fused_chunk`` (of the fused training loop, default 1).
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
        # "auto": the fused loop with a hand-written backward pass whenever it applies (see
        # uses_fused_kernel); False forces the generic loop. Not serialized, like use_cudnn.
        self.use_fused_kernel = "auto"
        # Timesteps per loop iteration: of the chunked inference loop (1 = one step per
        # iteration) and of the fused training loop. Measured on CPU, chunking pays off
        # without gradients but not in the fused loop (its stacking and slicing cost more
        # than the loop overhead they save).
        self.time_chunk = 10
        self.fused_chunk = 1

    @property
    def uses_fused_kernel(self) -> bool:
        """Whether training calls take the fused path: TensorFlow backend, default
        activations (tanh / sigmoid, whose derivatives it hard-codes), no unroll."""
        cell = self.cell
        return (self.use_fused_kernel == "auto"
                and keras.backend.backend() == "tensorflow"
                and not self.unroll
                and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid)

    @property
    def units(self):
        return self.cell.units

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask,
                            training=training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Returns ``(last_output, outputs, [h, c])`` with keras.backend.rnn's conventions
        (masks, ``go_backwards`` order, ``zero_output_for_mask``); see the module docstring
        for the three paths.
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
        peepholes = cell.peephole_rows(peephole, like=initial_state[0])
        if training and self.uses_fused_kernel:
            return self._fused_loop(sequences, initial_state, mask, kernel, bias,
                                    recurrent_kernel, peephole, rec_keep)
        if not self.unroll and self.time_chunk > 1:
            return self._chunked_loop(sequences, initial_state, mask, kernel, bias,
                                      recurrent_kernel, peepholes, rec_keep)
        # One [batch*time, features] x [features, 4*units] GEMM instead of one per step.
        projected = cell.project_inputs(sequences, kernel, bias)
        cell.fast_path = _ProjectedStep(cell, recurrent_kernel, peepholes, rec_keep)
        try:
            return super().inner_loop(projected, initial_state, mask, training=training)
        finally:
            cell.fast_path = None

    def _chunked_loop(self, sequences, initial_state, mask, kernel, bias, recurrent_kernel,
                      peepholes, rec_keep):
        """Keras' time loop over chunks of ``time_chunk`` steps (see _ChunkStep)."""
        if keras.tree.is_nested(mask):
            mask = mask[0]
        static_steps = sequences.shape[1]
        chunk = self.time_chunk if static_steps is None else max(1, min(self.time_chunk,
                                                                         static_steps))
        steps = ops.shape(sequences)[1]
        pad = (chunk - steps % chunk) % chunk
        has_mask = mask is not None or static_steps is None or static_steps % chunk != 0
        features = sequences.shape[-1]
        x = sequences
        if has_mask:
            valid = ops.ones_like(x[..., :1]) if mask is None else ops.cast(
                ops.expand_dims(mask, -1), x.dtype)
            x = ops.concatenate([x, valid], axis=-1)
        # Padding goes at the end: padded steps are masked, so they only carry the states.
        x = ops.pad(x, [[0, 0], [0, pad], [0, 0]])
        x = ops.reshape(x, (ops.shape(x)[0], -1, chunk * (features + int(has_mask))))
        cell = self.cell
        cell.fast_path = _ChunkStep(cell, chunk, features, has_mask, self.go_backwards, kernel,
                                    bias, recurrent_kernel, peepholes, rec_keep)
        try:
            _, outputs, (h_last, c_last) = super().inner_loop(x, initial_state, None)
        finally:
            cell.fast_path = None

        proc_mask = None
        if mask is not None:
            proc_mask = ops.flip(mask, axis=1) if self.go_backwards else mask
            proc_mask = ops.expand_dims(ops.cast(proc_mask, "bool"), -1)
        if not self.return_sequences:
            last_output = h_last
            if proc_mask is not None:
                # keras.backend.rnn: zeros unless a step was valid (or, with
                # zero_output_for_mask, unless the last step was valid).
                seen = proc_mask[:, -1] if self.zero_output_for_mask else ops.any(
                    proc_mask, axis=1)
                last_output = ops.where(seen, h_last, ops.zeros_like(h_last))
            return last_output, ops.expand_dims(last_output, 1), [h_last, c_last]

        hs = ops.reshape(outputs, (ops.shape(outputs)[0], -1, self.units))
        # Outputs are in processing order; a backward pass meets the end padding first.
        hs = hs[:, pad:] if self.go_backwards else hs[:, :steps]
        if proc_mask is not None:
            if self.zero_output_for_mask:
                keep_out = proc_mask
            else:
                keep_out = ops.cumsum(ops.cast(proc_mask, "int32"), axis=1) > 0
            hs = ops.where(keep_out, hs, ops.zeros_like(hs))
        return hs[:, -1], hs, [h_last, c_last]

    def _fused_loop(self, sequences, initial_state, mask, kernel, bias, recurrent_kernel,
                    peephole, rec_keep):
        """The fused recurrence, with keras.backend.rnn's output conventions."""
        if keras.tree.is_nested(mask):
            mask = mask[0]
        # Time-major before projecting: the transpose then moves features, not 4 * units.
        z = self.cell.project_inputs(ops.transpose(sequences, (1, 0, 2)), kernel, bias)
        if mask is not None:
            mask = ops.expand_dims(ops.transpose(ops.cast(mask, "bool"), (1, 0)), -1)
        if self.go_backwards:
            z = ops.flip(z, axis=0)
            mask = None if mask is None else ops.flip(mask, axis=0)
        hs, h_last, c_last = fused_peephole_sequence(
            z, initial_state[0], initial_state[1], recurrent_kernel, peephole, mask, rec_keep,
            self.cell.cell_clip, chunk=self.fused_chunk)
        if mask is None:
            outputs, last_output = hs, h_last
        else:
            # A masked step outputs zeros if zero_output_for_mask, else the previous output:
            # the carried h once any step was valid, zeros before (keras.backend.rnn).
            if self.zero_output_for_mask:
                valid = mask
            else:
                valid = ops.cumsum(ops.cast(mask, "int32"), axis=0) > 0
            outputs = ops.where(valid, hs, ops.zeros_like(hs))
            last_output = outputs[-1]
        if not self.return_sequences:
            return last_output, ops.expand_dims(last_output, 1), [h_last, c_last]
        return last_output, ops.transpose(outputs, (1, 0, 2)), [h_last, c_last]

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
