"""README's strongest-translation commands, run as written on a small generated corpus: the
``train`` command (its ``--set`` options verbatim, tiny sizes appended) and ``bench.seq2seq
--budget`` (a 20 s budget appended): the JSON it prints holds every side-by-side row."""

import contextlib
import io
import json
import os
import shlex

import pytest

pytest.importorskip("tensorflow_text")
pytest.importorskip("sentencepiece")

from tasks import seq2seq as s2s  # noqa: E402
from tasks.runner import cli  # noqa: E402
from tasks.runner import run_dir as rd  # noqa: E402
from tests.tasks.test_seq2seq_subword import write_pairs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_commands() -> list[list[str]]:
    """argv of each command in the block after README's strongest-configuration paragraph."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = text.split("The strongest configuration, and the benchmark", 1)[1]
    block = block.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.strip().splitlines() if line.strip()]


def test_readme_block_holds_the_train_and_bench_commands():
    train, bench = readme_commands()
    assert train[:4] == ["python", "-m", "tasks.seq2seq", "train"]
    assert "tie_embeddings=true" in train and "encoder_residual=true" in train
    assert bench[:3] == ["python", "-m", "bench.seq2seq"] and "--budget" in bench


@pytest.mark.slow  # ~1 minute on 2 cores: SentencePiece + one epoch of a 2-layer model
def test_readme_train_command_runs_with_tiny_sizes(tmp_path):
    argv = readme_commands()[0][3:]
    pairs = write_pairs(tmp_path / "pairs.tsv")
    argv = [a.replace("pairs:spa.txt", "pairs:" + pairs) for a in argv]
    out = str(tmp_path / "run")
    argv += ["--output", out, "--epochs", "1", "--set", "vocab_size=320", "--set", "units=8",
             "--set", "embedding_dim=8", "--set", "beam_width=2"]
    assert cli.main(s2s.Seq2SeqTask(), argv) == 0
    config, pre, model = rd.load_run(s2s.Seq2SeqTask(), out)
    assert config.tie_embeddings and config.encoder_residual and config.num_layers == 2
    assert pre.unit == "subword" and model.get_layer("encoder").residual


@pytest.mark.slow  # ~2 minutes on 2 cores: two models trained 10 s each, then decoded
def test_readme_bench_command_prints_every_row_with_a_tiny_budget(tmp_path):
    from bench import seq2seq as bench

    argv = readme_commands()[1][3:]
    argv += ["--budget", "20", "--pairs", write_pairs(tmp_path / "pairs.tsv"), "--pairs-eval",
             "40", "--units", "8", "--samples", "2"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert bench.main(argv) == 0
    result = json.loads(stdout.getvalue().strip().splitlines()[-1])
    rows = {(r["model"], r["weights"], r["method"]) for r in result["side_by_side"]}
    assert {("baseline", "last", "greedy"), ("baseline", "last", "beam"),
            ("strongest", "last", "greedy"), ("strongest", "last", "beam")} <= rows
    assert result["strongest_config"]["tie_embeddings"] is True
    assert result["baseline_config"]["unit"] == "word"
    assert len(result["samples"]) == 2 and set(result["samples"][0]) == {
        "source", "reference", "baseline", "strongest"}
    goals = result["goals"]
    assert isinstance(goals["heldout_bleu>=30_within_2h"]["met"], bool)
    assert isinstance(goals["strongest_subword>=baseline_word"]["met"], bool)
    assert "warning" in result  # 10 s rows are flagged as proving only that the pipeline runs
