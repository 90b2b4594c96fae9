"""The base the generative tasks share (character and music language models).

A generator serves ``serving_default`` (temperature sampling, or greedy at temperature 0)
and ``generate`` (the same inputs plus ``top_k``, ``top_p`` and ``seed``). This base owns
what is the same for every generator: the ``--temperature`` and sampling flags and their
checks, the sampling inputs of ``generate``, and the ``generate`` command itself::

    python -m tasks.<generator> generate --model RUN_OR_EXPORT [task flags] --top-k 5 --seed 3

A text generator that also serves ``score(text)`` (``scores_texts = True``) gets the ``score``
command; it turns the signature's outputs into rows (``score_rows``, best first) and a
printed line (``score_line``)::

    python -m tasks.<generator> score --model RUN_OR_EXPORT [--json] "text one" "text two"

A subclass adds its prompt flags (:meth:`GenerativeTask.add_prompt_arguments`), builds
``serving_default``'s inputs in ``predict_inputs`` and prints results in
``show_predictions``, as any task.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tasks.runner.errors import InputError
from tasks.runner.task import PredictRequest, Task

#: The signature that samples with every knob (serving_default's inputs + SAMPLING_INPUTS).
GENERATE = "generate"
#: The signature and command that rank texts by likelihood.
SCORE = "score"
#: ``generate``'s inputs beyond serving_default's: ``{input: (flag, dtype)}``.
SAMPLING_INPUTS = {"top_k": ("--top-k", tf.int32), "top_p": ("--top-p", tf.float32),
                   "seed": ("--seed", tf.int32)}


class GenerativeTask(Task):
    """A task whose serving signatures sample: ``serving_default`` and ``generate``."""

    #: What top-k / top-p restrict, for the help text ("character", "pitch").
    sampled_unit: str = "token"
    #: ``generate`` takes positional inputs (prompts); False: the flags say everything.
    generate_takes_inputs: bool = False
    #: The export serves ``score(text)``: add the ``score`` command.
    scores_texts: bool = False

    # ---- flags --------------------------------------------------------------------------
    def add_prompt_arguments(self, parser) -> None:
        """The task's own ``predict`` / ``generate`` flags (prompt, length...)."""

    def add_predict_arguments(self, parser) -> None:
        self.add_prompt_arguments(parser)
        parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")

    def add_sampling_arguments(self, parser) -> None:
        """``generate``'s flags beyond ``predict``'s: top-k, top-p, seed."""
        parser.add_argument("--top-k", type=int, default=0,
                            help=f"{self.sampled_unit} top-k (0 = off)")
        parser.add_argument("--top-p", type=float, default=1.0,
                            help=f"{self.sampled_unit} nucleus (1 = off)")
        parser.add_argument("--seed", type=int, default=-1, help="-1 = unseeded")

    def check_temperature(self, request: PredictRequest) -> float:
        """``--temperature``, checked.

        Raises:
            InputError: A negative temperature.
        """
        temperature = request.option("temperature", 1.0)
        if temperature < 0:
            raise InputError(f"--temperature must be >= 0, got {temperature}")
        return temperature

    def sampling_inputs(self, request: PredictRequest) -> dict[str, tf.Tensor]:
        """``{"top_k", "top_p", "seed"}`` tensors for ``generate``, from ``request``'s flags.

        Raises:
            InputError: top-k < 0 or top-p outside (0, 1].
        """
        top_k, top_p = request.option("top_k", 0), request.option("top_p", 1.0)
        if top_k < 0 or not 0 < top_p <= 1:
            raise InputError(f"--top-k must be >= 0 and --top-p in (0, 1], got {top_k}, "
                             f"{top_p}")
        values = {"top_k": top_k, "top_p": top_p, "seed": request.option("seed", -1)}
        return {name: tf.constant(values[name], dtype)
                for name, (_, dtype) in SAMPLING_INPUTS.items()}

    # ---- the generate command -----------------------------------------------------------
    def extra_commands(self) -> dict:
        commands = {GENERATE: (self.add_generate_arguments, run_generate)}
        if self.scores_texts:
            commands[SCORE] = (self.add_score_arguments, run_score)
        return commands

    # ---- the score command (scores_texts) -------------------------------------------------
    def add_score_arguments(self, parser) -> None:
        parser.add_argument("--model", default=os.path.join("runs", self.name),
                            help=f"run directory, or saved_models/{self.name}[/<version>]")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("texts", nargs="+", help="texts to score")

    def score_rows(self, texts: list[str], outputs: dict) -> list[dict]:
        """One JSON-ready row per text from ``score``'s outputs, best first."""
        raise NotImplementedError(f"{self.name} sets scores_texts but has no score_rows")

    def score_line(self, row: dict) -> str:
        """The printed (non ``--json``) line of one ``score_rows`` row."""
        raise NotImplementedError(f"{self.name} sets scores_texts but has no score_line")

    def add_generate_arguments(self, parser) -> None:
        parser.add_argument("--model", default=os.path.join("runs", self.name),
                            help=f"run directory, or saved_models/{self.name}[/<version>]")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        self.add_predict_arguments(parser)
        if self.generate_takes_inputs:
            parser.add_argument("inputs", nargs="*", help="prompts")
        self.add_sampling_arguments(parser)


def run_generate(task: GenerativeTask, args) -> int:
    """``generate``: ``predict_inputs`` plus the sampling inputs, through ``generate``."""
    from tasks.runner import loading

    request = PredictRequest.from_args(args, getattr(args, "inputs", None) or ())
    sampling = task.sampling_inputs(request)  # bad flags fail before the model loads
    loaded = loading.load(args.model, task)  # a run or an export, with its trained config
    inputs = {**task.predict_inputs(loaded.config, request), **sampling}
    results = task.show_predictions(loaded.config, request, inputs,
                                    loaded.signature(GENERATE)(**inputs))
    if request.json:
        for result in results:
            print(json.dumps(result, ensure_ascii=False))
    return 0


def run_score(task: GenerativeTask, args) -> int:
    """``score``: the texts through the ``score`` signature, best first."""
    from tasks.runner import loading

    loaded = loading.load(args.model, task)  # keeps the serving module alive while fn runs
    outputs = loaded.signature(SCORE)(text=tf.constant(args.texts))
    for row in task.score_rows(list(args.texts), outputs):
        print(json.dumps(row, ensure_ascii=False) if args.json else task.score_line(row))
    return 0
