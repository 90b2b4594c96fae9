"""Request limits of the serving signatures, enforced inside the exported graph.

One request must not crash or exhaust the server: the serving modules of the tasks bound what
a request can make them compute with values from the task config, baked into the export as
constants. Too many rows, or sampling parameters that are not finite numbers in range, fail
with ONE ``InvalidArgumentError`` whose message names the input and the limit; over-long texts
are cut to the limit, and the signature's ``truncated`` output (bool ``[batch]``) says which
rows were. Invalid UTF-8 bytes become U+FFFD before anything reads the text, so outputs are
valid UTF-8 whatever comes in.
"""

from __future__ import annotations

import tensorflow as tf


def check_batch(values, max_batch: int, name: str):
    """``values`` ``[batch, ...]`` unchanged, after asserting ``batch <= max_batch``.

    Raises (when run):
        InvalidArgumentError: ``"<name>: ... max_batch=<max_batch> ..."``.
    """
    size = tf.shape(values, out_type=tf.int64)[0]
    check = tf.debugging.assert_less_equal(
        size, tf.constant(int(max_batch), tf.int64),
        message=f"{name}: a request holds at most max_batch={int(max_batch)} rows "
                "(config key max_batch); split it")
    with tf.control_dependencies([check]):
        return tf.identity(values)


def check_scalar(value, name: str, low: float, high: float, low_open: bool = False):
    """A float or int scalar ``value`` unchanged, after asserting it is a finite number in
    ``[low, high]`` (``(low, high]`` with ``low_open``); NaN and inf fail.

    Raises (when run):
        InvalidArgumentError: ``"<name> must be a finite number in [low, high]" <value>``.
    """
    x = tf.cast(value, tf.float64)
    above = x > low if low_open else x >= low
    ok = tf.logical_and(tf.math.is_finite(x), tf.logical_and(above, x <= high))
    interval = f"{'(' if low_open else '['}{_number(low)}, {_number(high)}]"
    check = tf.debugging.Assert(ok, [f"{name} must be a finite number in {interval}, got",
                                     value], name=f"check_{name}")
    with tf.control_dependencies([check]):
        return tf.identity(value)


def _number(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_finite(values, name: str):
    """Float ``values`` unchanged, after asserting every element is finite (no NaN, no inf)."""
    return tf.debugging.assert_all_finite(values, f"{name} must be finite numbers (no NaN/inf)")


def valid_utf8(text):
    """string ``[...]`` -> the same with every invalid UTF-8 byte sequence replaced by U+FFFD
    (valid text is returned unchanged)."""
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")


def keep_chars(text, limit: int, last: bool = False):
    """Cuts valid UTF-8 ``text`` ``[batch]`` to at most ``limit`` characters (code points).

    Args:
        text: string ``[batch]``, valid UTF-8 (see :func:`valid_utf8`).
        limit: characters kept per row.
        last: keep the last characters (a prompt's end) instead of the first.

    Returns:
        ``(text string [batch], truncated bool [batch])``.
    """
    length = tf.strings.length(text, unit="UTF8_CHAR")
    start = tf.maximum(length - limit, 0) if last else tf.zeros_like(length)
    size = tf.fill(tf.shape(length), tf.constant(int(limit), length.dtype))
    return tf.strings.substr(text, start, size, unit="UTF8_CHAR"), length > limit


#: Characters read per allowed word before a word-level text is split: bounds the dense
#: [batch, words] tensor a vectorizer builds for a mostly short batch with one huge text.
CHARS_PER_WORD = 32


def keep_tokens(ragged, limit: int):
    """ragged ``[batch, None]`` -> (its first ``limit`` items per row, truncated bool
    ``[batch]``)."""
    return ragged[:, :limit], ragged.row_lengths() > limit


#: Above this the scaled logits of forbidden ids (-1e9 / temperature) stop being negligible.
MAX_TEMPERATURE = 100.0


def check_sampling(temperature, top_k, top_p):
    """Sampling inputs checked in-graph: ``temperature`` finite in [0, MAX_TEMPERATURE],
    ``top_k`` in [0, 2^31), ``top_p`` finite in (0, 1] (NaN/inf fail, naming the input;
    Python numbers from the config pass as they are). Returns ``(temperature, top_k, top_p)``.
    """
    temperature = check_scalar(temperature, "temperature", 0.0, MAX_TEMPERATURE)
    if isinstance(top_k, tf.Tensor):
        top_k = check_scalar(top_k, "top_k", 0, 2 ** 31 - 1)
    if isinstance(top_p, tf.Tensor):
        top_p = check_scalar(top_p, "top_p", 0.0, 1.0, low_open=True)
    return temperature, top_k, top_p
