"""Issue 17's speed settings: ``jit_compile`` (validated, XLA fallback), the bf16 CPU check
behind ``--mixed-precision auto``, and the quiet start-up of ``python -m tasks.<task>``."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tasks
from tasks import sentiment
from tasks.runner import config as config_lib
from tasks.runner import environment, errors

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NoXlaLayer(keras.layers.Layer):
    """Identity through a Python function: an op XLA has no kernel for."""

    def call(self, x):
        y = tf.numpy_function(lambda a: a, [x], tf.float32, stateful=False)
        y.set_shape(x.shape)
        return y


def test_jit_compile_values_are_checked():
    config = config_lib.override(sentiment.SentimentConfig(), {"jit_compile": "on"})
    assert config.validate().jit_compile == "on"
    with pytest.raises(errors.ConfigError, match=r"jit_compile='fast'.*'auto', 'on', 'off'"):
        config_lib.override(sentiment.SentimentConfig(), {"jit_compile": "fast"},
                            origin="--set", validate=True)


def test_xla_failure_falls_back_with_one_line_and_still_trains():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(NoXlaLayer()(inputs)))
    model.compile(keras.optimizers.Adam(0.1), "mse", jit_compile=True)
    before = model.get_weights()[0].copy()
    messages = []
    environment.install_xla_fallback(model, "demo", log=messages.append)
    x = np.ones((64, 4), "float32")
    history = model.fit(x, 3 * np.ones((64, 1), "float32"), epochs=3, batch_size=16, verbose=0)
    assert len(messages) == 1, messages
    assert messages[0].startswith("[demo] XLA could not compile the train step (")
    assert "PyFunc" in messages[0] and messages[0].endswith("training without XLA")
    assert model.jit_compile is False
    losses = history.history["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert not np.allclose(model.get_weights()[0], before)


def test_choose_jit_explicit_and_short_runs():
    config = sentiment.SentimentConfig(epochs=2, batch_size=32)
    strategy = tf.distribute.get_strategy()
    args = (sentiment.SentimentTask(), None, strategy, None, None)
    on = config_lib.override(config, {"jit_compile": "on"})
    off = config_lib.override(config, {"jit_compile": "off"})
    assert environment.choose_jit(args[0], on, *args[2:])[0] is True
    assert environment.choose_jit(args[0], off, *args[2:])[0] is False
    # auto: 2 epochs x 4 batches cannot win back an XLA compile; decided without a probe
    jit, why = environment.choose_jit(args[0], config, *args[2:], train_examples=100)
    assert jit is False and "too short" in why


def test_native_bf16_is_read_from_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    without.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert environment.cpu_has_native_bf16(str(with_bf16))
    assert not environment.cpu_has_native_bf16(str(without))
    assert not environment.cpu_has_native_bf16(str(tmp_path / "missing"))


def test_precision_auto_says_why():
    policy = environment.configure_precision("auto", sentiment.SentimentConfig(
        units=8, embedding_dim=8, batch_size=8))
    assert policy in ("float32", "mixed_bfloat16", "mixed_float16")
    assert environment.LAST_CHOICE.startswith("auto: ")
    if not tf.config.list_physical_devices("GPU"):
        assert ("probe" in environment.LAST_CHOICE) == environment.cpu_has_native_bf16()


def test_verbose_is_asked_by_flag_or_environment():
    assert tasks.verbose_requested(["x", "train", "--verbose"], {})
    assert tasks.verbose_requested(["x"], {"RECURRENT_SUITE_VERBOSE": "1"})
    assert tasks.verbose_requested(["x"], {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not tasks.verbose_requested(["x"], {"TF_CPP_MIN_LOG_LEVEL": "2"})


def test_cli_start_up_is_quiet_in_a_clean_environment(tmp_path):
    """No TF_CPP_MIN_LOG_LEVEL, no KERAS_BACKEND: stderr holds the CLI's own line only."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    # Keras imports matplotlib, which builds its font cache under a fresh HOME once and says so
    # when that takes over 5 s (a loaded machine, parallel test workers): a one-time line of
    # matplotlib's, not start-up noise. Build it first, as any earlier run would have.
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                   capture_output=True, timeout=300, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "tasks.sentiment", "evaluate", "--model",
         str(tmp_path / "missing")], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: run directory not found: {tmp_path / 'missing'}"], result.stderr
    for noise in ("oneDNN", "cuInit", "absl", "cuda", "I0000", "E0000", "W0000"):
        assert noise not in result.stderr


def readme_tour() -> list[str]:
    """The commands of README's quick tour, in order (comments dropped)."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = text.split("A quick tour with sentiment:", 1)[1].split("```bash", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    return [line.split("  #", 1)[0].strip() for line in lines if line.strip()]


@pytest.mark.slow
def test_readme_quick_tour_runs_as_written_and_learns(tmp_path):
    """Each tour command in a fresh directory (a few minutes on 2 cores): all succeed, the
    trained model and the tuner's best trial are clearly above chance (0.5)."""
    import shlex

    env = {**os.environ, "PYTHONPATH": REPO}
    outputs = []
    for command in readme_tour():
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "tasks.sentiment"], command
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    trained = json.loads(outputs[0].strip().splitlines()[-1])
    assert trained["accuracy"] > 0.7, trained
    best = json.load(open(tmp_path / "tune" / "sentiment" / "best.json", encoding="utf-8"))
    assert best["score"] > 0.6, best
