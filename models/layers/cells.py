"""Peephole LSTM cell (Gers & Schmidhuber 2000), in keras + keras.ops only.

The cell is the one-timestep building block (usable in ``keras.layers.RNN``); the fast
sequence layer is :class:`models.layers.peephole_lstm.PeepholeLSTM` and the stacked
(bi)directional layer is :class:`models.layers.stacked.StackedBidirectional`. Both import this
module, so it imports neither (no import circle).

Weight layout (so checkpoints map 1:1 from ``keras.layers.LSTMCell`` and other libraries):

* ``kernel``           [input_dim, 4 * units], gate blocks (input, forget, cell, output)
* ``recurrent_kernel`` [units, 4 * units], same gate order
* ``bias``             [4 * units], same gate order
* ``peephole_kernel``  [3, units], rows (input, forget, output); absent if ``use_peepholes=False``
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "recurrent_suite"

__all__ = ["PeepholeLSTMCell"]


def check_units(units, name: str = "units") -> int:
    """Returns ``units`` as int or raises a ValueError naming the bad value."""
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {units!r}")
    return units


def check_rate(rate, name: str) -> float:
    """Dropout-style rates must lie in [0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1), got {rate!r}")
    return float(rate)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTMCell(keras.layers.Layer):
    """LSTM cell with peephole connections from the cell state to the gates.

    Equations (``⊙`` elementwise, ``σ`` = ``recurrent_activation``, ``tanh`` = ``activation``)::

        i   = σ(x W_i + h U_i + b_i + p_i ⊙ c_{t-1})
        f   = σ(x W_f + h U_f + b_f + p_f ⊙ c_{t-1})
        c_t = f ⊙ c_{t-1} + i ⊙ tanh(x W_c + h U_c + b_c)      (clipped to ±cell_clip if set)
        o   = σ(x W_o + h U_o + b_o + p_o ⊙ c_t)
        h_t = o ⊙ tanh(c_t)

    With ``use_peepholes=False`` this is exactly ``keras.layers.LSTMCell``.

    Args:
        units: positive int, size of ``h`` and ``c``.
        activation: for the cell candidate and the output squashing (default tanh).
        recurrent_activation: for the gates (default sigmoid).
        use_peepholes: add the ``p ⊙ c`` terms.
        use_bias: whether the layer has a bias vector.
        unit_forget_bias: initialise the forget-gate bias to 1 (Jozefowicz et al. 2015).
        kernel_initializer, recurrent_initializer, bias_initializer, peephole_initializer:
            initialisers of the four weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer, peephole_regularizer:
            optional regularisers.
        kernel_constraint, recurrent_constraint, bias_constraint, peephole_constraint:
            optional constraints.
        dropout: input dropout rate in [0, 1).
        recurrent_dropout: dropout rate on ``h`` feeding the recurrent matmul, in [0, 1).
        cell_clip: if set (> 0), ``c_t`` is clipped to ``[-cell_clip, cell_clip]``.
        seed: seed of the dropout masks.

    Call arguments:
        inputs: [batch, input_dim].
        states: ``[h, c]``, each [batch, units].
        training: dropout is active only when True.

    Returns:
        ``(h_t, [h_t, c_t])``, each [batch, units], in the compute dtype.

    Dropout: called step by step (e.g. in ``keras.layers.RNN``) a fresh mask is drawn every
    step. :class:`PeepholeLSTM` instead draws one input mask and one recurrent mask per
    sequence (variational dropout, as ``keras.layers.LSTM``) and passes them in.
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        cell_clip=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_peepholes = bool(use_peepholes)
        self.use_bias = bool(use_bias)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.peephole_regularizer = keras.regularizers.get(peephole_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.peephole_constraint = keras.constraints.get(peephole_constraint)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        if cell_clip is not None and (isinstance(cell_clip, bool) or
                                      not isinstance(cell_clip, (int, float)) or cell_clip <= 0):
            raise ValueError(f"`cell_clip` must be None or a positive number, got {cell_clip!r}")
        self.cell_clip = None if cell_clip is None else float(cell_clip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        # Set by PeepholeLSTM for the duration of its time loop (see its inner_loop).
        self.fast_path = None

    def build(self, input_shape):
        input_dim = input_shape[-1]
        u = self.units
        self.kernel = self.add_weight(
            shape=(input_dim, 4 * u), name="kernel", initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            shape=(u, 4 * u), name="recurrent_kernel", initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint)
        if self.use_bias:
            bias_init = self.bias_initializer
            if self.unit_forget_bias:
                base = self.bias_initializer

                def bias_init(_, *args, **kwargs):
                    return ops.concatenate([
                        base((u,), *args, **kwargs),
                        keras.initializers.get("ones")((u,), *args, **kwargs),
                        base((2 * u,), *args, **kwargs),
                    ])

            self.bias = self.add_weight(
                shape=(4 * u,), name="bias", initializer=bias_init,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        else:
            self.bias = None
        if self.use_peepholes:
            self.peephole_kernel = self.add_weight(
                shape=(3, u), name="peephole_kernel", initializer=self.peephole_initializer,
                regularizer=self.peephole_regularizer, constraint=self.peephole_constraint)
        else:
            self.peephole_kernel = None
        super().build(input_shape)

    # -- pieces shared with PeepholeLSTM so the cell and the fast layer cannot drift apart --

    def cast_weights(self, dtype):
        """(kernel, recurrent_kernel, bias or None, peephole_kernel or None) in ``dtype``.

        Variables stay float32; casting once outside the time loop keeps the loop body lean.
        """
        def c(w):
            return None if w is None else ops.cast(w, dtype)
        return c(self.kernel), c(self.recurrent_kernel), c(self.bias), c(self.peephole_kernel)

    def project_inputs(self, x, kernel, bias):
        """``x @ W + b``: x [..., input_dim] -> [..., 4 * units] (any number of leading axes)."""
        z = ops.matmul(x, kernel)
        return z if bias is None else z + bias

    def recurrence(self, z_x, h, c, recurrent_kernel, peepholes):
        """One step given the projected input ``z_x`` [batch, 4 * units].

        ``h`` is the (possibly recurrent-dropped) previous output, ``c`` the previous cell
        state, both [batch, units]; ``peepholes`` is None or the rows ``(p_i, p_f, p_o)``,
        each broadcastable to [batch, units]. Returns ``(h_t, c_t)``.
        """
        z = z_x + ops.matmul(h, recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        if peepholes is not None:
            z_i = z_i + peepholes[0] * c
            z_f = z_f + peepholes[1] * c
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c_new = f * c + i * self.activation(z_c)
        if self.cell_clip is not None:
            c_new = ops.clip(c_new, -self.cell_clip, self.cell_clip)
        if peepholes is not None:
            z_o = z_o + peepholes[2] * c_new
        o = self.recurrent_activation(z_o)
        return o * self.activation(c_new), c_new

    def peephole_rows(self, peephole_kernel, like=None):
        """``(p_i, p_f, p_o)`` from [3, units], or None without peepholes.

        With ``like`` ([batch, units]) the rows are broadcast to its shape. Loops do this once
        up front: per step, the peephole terms are then plain elementwise products whose
        gradients need neither a slice nor a reduction over the batch.
        """
        if peephole_kernel is None:
            return None
        rows = (peephole_kernel[0], peephole_kernel[1], peephole_kernel[2])
        if like is None:
            return rows
        return tuple(ops.broadcast_to(r, ops.shape(like)) for r in rows)

    def dropout_mask(self, like, rate):
        """A {0, 1/(1-rate)} mask shaped like ``like`` (inverted dropout)."""
        return keras.random.dropout(ops.ones_like(like), rate=rate, seed=self.seed_generator)

    def call(self, inputs, states, training=False):
        h, c = states[0], states[1]
        if self.fast_path is not None:
            # Inside PeepholeLSTM's loop, which pre-processed `inputs` (see fast_path there).
            return self.fast_path(inputs, h, c)
        kernel, recurrent_kernel, bias, peephole = self.cast_weights(self.compute_dtype)
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask(inputs, self.dropout)
        h_in = h
        if training and self.recurrent_dropout > 0:
            h_in = h * self.dropout_mask(h, self.recurrent_dropout)
        z_x = self.project_inputs(inputs, kernel, bias)
        # The recurrent term must see the dropped h, but the peepholes and carry use raw c.
        h_new, c_new = self.recurrence(z_x, h_in, c, recurrent_kernel,
                                       self.peephole_rows(peephole))
        return h_new, [h_new, c_new]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
                for _ in range(2)]

    def get_config(self):
        ser_i, ser_r, ser_c = (keras.initializers.serialize, keras.regularizers.serialize,
                               keras.constraints.serialize)
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_peepholes": self.use_peepholes,
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": ser_i(self.kernel_initializer),
            "recurrent_initializer": ser_i(self.recurrent_initializer),
            "bias_initializer": ser_i(self.bias_initializer),
            "peephole_initializer": ser_i(self.peephole_initializer),
            "kernel_regularizer": ser_r(self.kernel_regularizer),
            "recurrent_regularizer": ser_r(self.recurrent_regularizer),
            "bias_regularizer": ser_r(self.bias_regularizer),
            "peephole_regularizer": ser_r(self.peephole_regularizer),
            "kernel_constraint": ser_c(self.kernel_constraint),
            "recurrent_constraint": ser_c(self.recurrent_constraint),
            "bias_constraint": ser_c(self.bias_constraint),
            "peephole_constraint": ser_c(self.peephole_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "cell_clip": self.cell_clip,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


#: Constructor arguments of PeepholeLSTMCell that PeepholeLSTM forwards to its cell.
CELL_ARGS = (
    "activation", "recurrent_activation", "use_peepholes", "use_bias", "unit_forget_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "peephole_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "peephole_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "peephole_constraint",
    "dropout", "recurrent_dropout", "cell_clip", "seed",
)

