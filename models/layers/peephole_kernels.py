"""Fused, chunked peephole-LSTM recurrence with a hand-written backward pass (keras.ops only).

Why: autodiff through a time loop differentiates every small op of every step and
accumulates ``dU`` with a matmul + add per step. Here the backward loop does only the
elementwise gate derivatives and ``dz @ U^T`` per step; the weight gradients are single GEMMs /
reductions over all timesteps afterwards (the cuDNN strategy). Both loops run ``chunk`` steps
per iteration (unrolled) to amortise the per-iteration cost of the loop machinery.

Only valid for the default activations (tanh, sigmoid), whose derivatives are written out.
"""

from __future__ import annotations

from keras import ops

# On the TensorFlow backend (the only one this path runs on) scan's `unroll` is the while
# loop's parallel_iterations, not unrolling: like keras.backend.rnn's 32, it lets the
# executor start a step's input reads and bookkeeping while the previous step computes.
_PARALLEL = 32


def _pack_chunks(x, chunk):
    """[time, batch, f] (time a multiple of chunk) -> [time // chunk, chunk, batch, f]."""
    return ops.reshape(x, (-1, chunk, ops.shape(x)[1], x.shape[-1]))


def fused_peephole_sequence(z, h0, c0, recurrent_kernel, peephole_kernel=None, mask=None,
                            recurrent_keep=None, cell_clip=None, chunk=8):
    """Runs the recurrence over pre-projected inputs.

    Args:
        z: [time, batch, 4 * units] ``x @ kernel + bias`` per step, in processing order.
        h0, c0: [batch, units] initial states.
        recurrent_kernel: [units, 4 * units].
        peephole_kernel: [3, units] rows (input, forget, output), or None.
        mask: [time, batch, 1] bool or None; masked steps carry the states unchanged.
        recurrent_keep: [batch, units] recurrent dropout mask (already scaled) or None.
        cell_clip: clip ``c`` to ``±cell_clip`` after each step, or None.
        chunk: timesteps per loop iteration.

    Returns:
        ``(hs, h_last, c_last)``: hs [time, batch, units] is ``h`` after each step (a masked
        step repeats the previous ``h``); differentiable w.r.t. z, h0, c0 and the kernels.
    """
    units = recurrent_kernel.shape[0]
    static_steps = z.shape[0]
    k_steps = chunk if static_steps is None else max(1, min(chunk, static_steps))
    steps = ops.shape(z)[0]
    pad = (k_steps - steps % k_steps) % k_steps
    if mask is None and (static_steps is None or static_steps % k_steps):
        mask = ops.ones_like(z[..., :1]) > 0  # padding steps need a mask
    has_mask = mask is not None
    has_peep = peephole_kernel is not None
    # Pack the mask as a 0/1 column so the loops scan one tensor (Keras' TF scan mishandles
    # several sequences of unknown length).
    zm = ops.concatenate([z, ops.cast(mask, z.dtype)], axis=-1) if has_mask else z
    zm = _pack_chunks(ops.pad(zm, [[0, pad], [0, 0], [0, 0]]), k_steps)
    args = [zm, h0, c0, recurrent_kernel] + ([peephole_kernel] if has_peep else [])

    def split_step(x_k):
        return (x_k[:, :4 * units], x_k[:, 4 * units:] > 0) if has_mask else (x_k, None)

    @ops.custom_gradient
    def run(*args):
        zm, h0, c0, rk = args[:4]
        p_i = p_f = p_o = None
        if has_peep:
            p_i, p_f, p_o = args[4][0], args[4][1], args[4][2]
        zeros_u = ops.zeros((k_steps,) + tuple(ops.shape(h0)), h0.dtype)
        zeros_g = ops.concatenate([zeros_u] * 4, axis=-1)

        def forward_chunk(carry, xs):
            h, c = carry[0], carry[1]
            hs, cs, gs = [], [], []
            for k in range(k_steps):
                z_k, m_k = split_step(xs[k])
                h_in = h if recurrent_keep is None else h * recurrent_keep
                z_i, z_f, z_g, z_o = ops.split(z_k + ops.matmul(h_in, rk), 4, axis=-1)
                if has_peep:
                    z_i = z_i + p_i * c
                    z_f = z_f + p_f * c
                i, f, g = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.tanh(z_g)
                c_new = f * c + i * g
                if cell_clip is not None:
                    c_new = ops.clip(c_new, -cell_clip, cell_clip)
                if has_peep:
                    z_o = z_o + p_o * c_new
                o = ops.sigmoid(z_o)
                h_new = o * ops.tanh(c_new)
                if m_k is not None:
                    h_new, c_new = ops.where(m_k, h_new, h), ops.where(m_k, c_new, c)
                h, c = h_new, c_new
                hs.append(h)
                cs.append(c)
                gs.append(ops.concatenate([i, f, g, o], axis=-1))
            new = (h, c, ops.stack(hs), ops.stack(cs), ops.stack(gs))
            # keras.ops.scan (TF backend) needs the per-iteration output to mirror the carry.
            return new, new

        (h_last, c_last, _, _, _), (_, _, hs, cs, gates) = ops.scan(
            forward_chunk, (h0, c0, zeros_u, zeros_u, zeros_g), zm, unroll=_PARALLEL)
        flat = (-1,) + tuple(ops.shape(h0))
        hs, cs = ops.reshape(hs, flat), ops.reshape(cs, flat)
        gates = ops.reshape(gates, flat[:2] + (4 * units,))

        def grad(*upstream):
            d_hs, d_h_last, d_c_last = (ops.zeros_like(t) if g is None else g for g, t in
                                        zip(upstream, (hs, h_last, c_last), strict=True))
            c_prev = ops.concatenate([ops.expand_dims(c0, 0), cs[:-1]], axis=0)
            h_prev = ops.concatenate([ops.expand_dims(h0, 0), hs[:-1]], axis=0)
            parts = [d_hs, gates, cs, c_prev]
            if has_mask:
                parts.append(ops.cast(ops.reshape(zm[..., 4 * units:], flat[:2] + (1,)),
                                      hs.dtype))
            packed = _pack_chunks(ops.concatenate(parts, axis=-1), k_steps)
            rk_t = ops.transpose(rk)

            def backward_chunk(carry, xs):
                dh_next, dc_next = carry[0], carry[1]
                dzs = [None] * k_steps
                for k in reversed(range(k_steps)):
                    x_k = xs[k]
                    dh = x_k[:, :units] + dh_next
                    i, f, g, o = ops.split(x_k[:, units:5 * units], 4, axis=-1)
                    c_t = x_k[:, 5 * units:6 * units]
                    cp = x_k[:, 6 * units:7 * units]
                    tanh_c = ops.tanh(c_t)
                    dz_o = dh * tanh_c * o * (1.0 - o)
                    dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)
                    if has_peep:
                        dc = dc + dz_o * p_o
                    if cell_clip is not None:
                        # ops.clip passes the gradient only where the value was not clipped.
                        inside = ops.abs(f * cp + i * g) <= cell_clip
                        dc = ops.where(inside, dc, ops.zeros_like(dc))
                    dz_i = dc * g * i * (1.0 - i)
                    dz_f = dc * cp * f * (1.0 - f)
                    dz_g = dc * i * (1.0 - g * g)
                    dc_prev = dc * f
                    if has_peep:
                        dc_prev = dc_prev + dz_i * p_i + dz_f * p_f
                    dz = ops.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1)
                    dh_prev = ops.matmul(dz, rk_t)
                    if recurrent_keep is not None:
                        dh_prev = dh_prev * recurrent_keep
                    if has_mask:
                        # A masked step copied the states: gradients flow straight through.
                        m_k = x_k[:, 7 * units:] > 0
                        dz = ops.where(m_k, dz, ops.zeros_like(dz))
                        dh_prev = ops.where(m_k, dh_prev, dh)
                        dc_prev = ops.where(m_k, dc_prev, dc_next)
                    dh_next, dc_next = dh_prev, dc_prev
                    dzs[k] = dz
                new = (dh_next, dc_next, ops.stack(dzs))
                return new, new

            (dh0, dc0, _), (_, _, dz) = ops.scan(
                backward_chunk, (d_h_last, d_c_last, zeros_g), packed, reverse=True,
                unroll=_PARALLEL)
            dz = ops.reshape(dz, flat[:2] + (4 * units,))
            h_in = h_prev if recurrent_keep is None else h_prev * recurrent_keep
            d_rk = ops.matmul(ops.transpose(ops.reshape(h_in, (-1, units))),
                              ops.reshape(dz, (-1, 4 * units)))
            d_zm = ops.concatenate([dz, ops.zeros_like(dz[..., :1])], axis=-1) if has_mask \
                else dz
            grads = [_pack_chunks(d_zm, k_steps), dh0, dc0, d_rk]
            if has_peep:
                # Reductions over time x batch in float32: float16 sums overflow easily.
                dz32, c_prev32 = ops.cast(dz, "float32"), ops.cast(c_prev, "float32")
                dz_i, dz_f, _, dz_o = ops.split(dz32, 4, axis=-1)
                d_p = ops.stack([ops.sum(dz_i * c_prev32, axis=(0, 1)),
                                 ops.sum(dz_f * c_prev32, axis=(0, 1)),
                                 ops.sum(dz_o * ops.cast(cs, "float32"), axis=(0, 1))])
                grads.append(ops.cast(d_p, rk.dtype))
            return tuple(grads)

        return (hs, h_last, c_last), grad

    hs, h_last, c_last = run(*args)
    return hs[:steps], h_last, c_last
