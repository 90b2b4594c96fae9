"""README "Pretrain, then fine-tune": its commands run as written, in order, in a fresh
directory (``texts.txt``: the tiny reviews' texts; ``tests/`` linked in for the fixtures)."""

import csv
import json
import os
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REVIEWS = os.path.join(REPO, "tests", "fixtures", "sentiment", "tiny_reviews.csv")


def readme_transfer_commands() -> list[str]:
    """The section's first bash block, comments dropped."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = text.split("### Pretrain, then fine-tune", 1)[1].split("```bash", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    return [line.split("  #", 1)[0].strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_section_shows_the_three_transfer_commands():
    commands = readme_transfer_commands()
    assert [c.split()[2] for c in commands] == [
        "tasks.language_model", "tasks.sentiment", "tasks.sentiment", "tasks.char_generation",
        "tasks.ner"]
    assert "pretrained=runs/lm" in commands[1] and "char_lm=runs/lm_fw" in commands[4]


@pytest.mark.slow  # five CLI processes (~2 min on 2 cores)
def test_readme_transfer_commands_run_as_written(tmp_path):
    with open(REVIEWS, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    # Paragraphs: lines for the word LM, chunks for the continuous char LM.
    (tmp_path / "texts.txt").write_text("\n\n".join(texts * 5) + "\n", encoding="utf-8")
    os.symlink(os.path.join(REPO, "tests"), tmp_path / "tests")
    env = {**os.environ, "PYTHONPATH": REPO}
    for command in readme_transfer_commands():
        argv = shlex.split(command)
        assert argv[:2] == ["python", "-m"], command
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    with open(tmp_path / "runs" / "sentiment_ft" / "unfreezing.json", encoding="utf-8") as f:
        assert [e["unfrozen"] for e in json.load(f)] == [1, 2, 3, 4]
    assert os.listdir(tmp_path / "saved_models" / "sentiment_ft")
    assert (tmp_path / "runs" / "ner_lm" / "model.keras").exists()
