"""The ``lstm-jax`` command: train, evaluate, reproduce, sample, export, list and benchmark.

Intentionally kept short: the work lives in ``lstm_jax.train``. A mistake of the
user's is one line ``lstm-jax: error: ...`` and exit status 2, reported before a run
directory is made; Ctrl-C or SIGTERM stops a run between steps with exit status
130/143 and the command that continues it.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
from pathlib import Path

TRAIN_USAGE = ("lstm-jax train NAME|FILE [--steps N] [--seed S | --seeds S,S,...] "
               "[--sweep FIELD=V,V,... ...] [--out DIR] [--resume] [--no-progress] [CONFIG FIELDS ...]")
REPRODUCE_USAGE = ("lstm-jax reproduce NAME|FILE [--variants V ...] [--seeds S ...] [--runs DIR] "
                   "[--results DIR] [--no-progress] [CONFIG FIELDS ...]")


def _train(args, fields: list[str]) -> int:
    from lstm_jax.train import config as cfg
    from lstm_jax.train import experiments, rundir

    if args.experiment is None:
        names = f"{', '.join(experiments.shipped())} or the path of your own .py file"
        if not args.help:
            raise cfg.ConfigError(f"train needs an experiment: {names}")
        _train_parser().print_help()
        print(f"\nexperiments: {names}; `lstm-jax train NAME --help` lists NAME's config fields")
        return 0
    experiment = experiments.load(args.experiment)
    if args.help:
        print(f"usage: {TRAIN_USAGE}\n\n{experiment.name}: {experiment.description}\n"
              f"  --seeds S,S,...  train a run per seed at once, in DIR/seedS\n"
              f"  --sweep FIELD=V,V,...\n"
              f"                   train a run per value at once, in DIR/FIELD=V; FIELD:\n"
              f"                   {', '.join(cfg.STEP_INPUTS)} or an option read at init\n"
              f"                   (cell_options.forget_bias)\n"
              f"  --out DIR        the run directory (default runs/{experiment.name}-TIME)\n"
              f"  --resume         continue the run in --out DIR from its latest checkpoint\n"
              f"  --no-progress    no progress bar\n")
        try:
            cfg.cli(experiment.config(), ["--help"], prog=f"lstm-jax train {args.experiment}")
        except SystemExit:  # tyro exits after printing the help
            pass
        return 0
    seeds = _seeds(args.seeds)
    if seeds and "seed" in cfg.explicit_fields(fields):
        raise cfg.ConfigError("give --seed S for one run or --seeds S,S,... for several, not both")
    sweep = _sweep(args.sweep, experiment, fields)
    many = seeds is not None or sweep is not None
    names = [name for name, _ in cfg.group_runs(experiment.config(), seeds, sweep)] if many else []
    if args.out is not None and not args.out.strip():
        raise cfg.ConfigError("--out needs a directory, got an empty one")  # not the folder "."
    if args.resume:
        if args.out is None:
            raise cfg.ConfigError("--resume needs --out DIR, the run directory to continue")
        config = _resumed_config(experiment, _first_run_dir(Path(args.out), names), fields)
    else:
        config = cfg.cli(experiment.config(), fields, prog=f"lstm-jax train {args.experiment}")
        if args.out is not None:  # at once, not after jax has prepared every run
            rundir.check_new(args.out)
    _keep_freed_memory()
    if len(names) > 1:
        _use_every_core()
    from lstm_jax.train import interrupts, loop  # jax and orbax: not for --help

    runs = cfg.group_runs(config, seeds, sweep) if many else [("", config)]
    group = (loop.prepare_group([run_config for _, run_config in runs], experiment=experiment)
             if many else [loop.prepare(config, experiment=experiment)])
    interrupts.check()  # nothing is written before this point
    run_dir = rundir.make(Path(args.out)) if args.resume else rundir.create(args.out, experiment.name)
    run_dirs = [run_dir / name for name in names] if many else [run_dir]
    print(f"run directory: {run_dir}" + (f" (a run each: {', '.join(names)}; trained at once)"
                                         if many else ""), flush=True)
    try:
        results = loop.run_many(group, run_dirs, resume=args.resume, progress=not args.no_progress,
                                command=shlex.join(["lstm-jax", *args.argv]))
    except KeyboardInterrupt as stop:  # at a safe point, or at once: the run directory is made
        print(_interrupted_message(stop, run_dir, args, many), file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    if many:
        return _print_runs(results, group)
    result, prepared = results[0], group[0]
    if result["already_finished"]:
        print(f"{run_dir} already finished at step {result['metrics']['step']}; nothing to do "
              f"(a larger --steps extends it)")
        return 0
    _print_metrics("final evaluation", result["metrics"], result["baselines"],
                   prepared.task.baseline_note)
    for name in ("metrics.jsonl", "loss.png", "checkpoints"):
        print(f"{name + ':':15} {run_dir / name}")
    return 0


def _seeds(words: list[list[int]] | None) -> list[int] | None:
    """The seeds of ``--seeds 0,1,2``, ``--seeds 0 1 2`` or ``--seeds 0,1 --seeds 2`` (each
    word parsed by ``_seed_word``)."""
    from lstm_jax.train import config as cfg

    return list(cfg.check_seeds([seed for word in words for seed in word])) if words else None


def _seed_word(word: str) -> list[int]:
    """argparse's type of ``--seeds``: one word, ``"3"`` or ``"0,1,2"``."""
    try:
        return [int(part) for part in word.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers, as 0,1,2 or 0 1 2: got {word!r}") from None


def _sweep(words: list[str] | None, experiment, fields: list[str]) -> dict | None:
    """The values of ``--sweep learning_rate=0.01,0.03 --sweep cell_options.forget_bias=0,1``,
    each parsed as its field's flag would parse it; a bool field's (whose flag takes no
    value) and an option's as ``--cell-options KEY=V`` reads V (``true``, ``0``)."""
    from lstm_jax.train import config as cfg

    if not words:
        return None
    sweep = {}
    for word in words:
        name, sep, texts = word.partition("=")
        field, _, key = name.partition(".")
        if not sep or not texts:
            raise cfg.ConfigError(f"--sweep takes FIELD=V,V,... (e.g. learning_rate=0.001,0.003), "
                                  f"got {word!r}")
        if name in sweep:
            raise cfg.ConfigError(f"--sweep {name} is given twice: give all its values in one "
                                  f"--sweep {name}=V,V,...")
        if field in cfg.explicit_fields(fields) and not key:
            raise cfg.ConfigError(f"give {cfg.flag(field)} for every run or --sweep {field}=... "
                                  f"for several, not both")
        if key or (field in cfg.FIELDS and isinstance(getattr(experiment.config(), field), bool)):
            option = key or field
            sweep[name] = [cfg.parse_options([f"{option}={text}"])[option]
                           for text in texts.split(",")]
        elif field in cfg.FIELDS:
            sweep[name] = [_swept_value(experiment, field, text) for text in texts.split(",")]
        else:
            sweep[name] = texts.split(",")  # sweep_grid names what is wrong
    return sweep


def _swept_value(experiment, field: str, text: str):
    """``text`` parsed as ``field``'s flag parses it; a value that does not parse names
    ``--sweep FIELD``, which the user wrote, not the flag (the field's own checks name
    the field already)."""
    from lstm_jax.train import config as cfg

    try:
        parsed = cfg.cli(experiment.config(), [cfg.flag(field), text],
                         prog=f"lstm-jax train {experiment.name}")
    except cfg.ConfigError as error:
        flag_named = f"Error parsing {cfg.flag(field)}: "
        message = str(error)
        if message.startswith(flag_named):
            message = f"--sweep {field}: {message.removeprefix(flag_named)}"
        raise cfg.ConfigError(message) from None
    return getattr(parsed, field)


def _first_run_dir(out: Path, names: list[str]) -> Path:
    """The run directory whose config a resumed command continues: ``out`` itself, or for
    runs trained at once (``names``: their directories in ``out``) that of the first.

    ``--resume`` continues runs that are there: ``out`` (or each ``out/NAME``) must hold
    a run, or be one that an interrupt stopped before it started (nothing in it but an
    empty checkpoints/). Anything else, such as a misspelt ``--out`` or runs trained at
    once resumed without the ``--seeds``/``--sweep`` that made them, is refused rather
    than started afresh."""
    from lstm_jax.train import config as cfg
    from lstm_jax.train import rundir

    if out.exists() and not out.is_dir():
        raise cfg.ConfigError(f"--out {out} is a file, not a run directory")
    if not out.exists():
        raise cfg.ConfigError(f"--out {out} does not exist: --resume continues a run there; "
                              f"leave --resume out to start one")
    single = (out / rundir.RECORD).exists()
    held = sorted(p.parent.name for p in out.glob(f"*/{rundir.RECORD}"))
    if names:
        missing = [name for name in names if not _resumable(out / name)]
        if missing and single:
            raise cfg.ConfigError(f"{out} holds one run, not runs trained at once: continue it "
                                  f"without --seeds and --sweep")
        if missing:
            raise cfg.ConfigError(f"{out} holds no run {missing[0]}"
                                  + (f" (it holds {', '.join(held)})" if held else "")
                                  + ": continue runs trained at once with the --seeds and "
                                    "--sweep that started them")
        return out / names[0]
    if held and not single:
        numbers = [name.removeprefix("seed") for name in held]
        if [cfg.seed_label(int(n)) for n in numbers if n.removeprefix("-").isdigit()] == held:
            raise cfg.ConfigError(f"{out} holds a run per seed ({', '.join(held)}); continue them "
                                  f"with --seeds {','.join(numbers)} --resume")
        raise cfg.ConfigError(f"{out} holds runs trained at once ({', '.join(held)}); continue "
                              f"them with the --seeds and --sweep that started them, and --resume")
    if not _resumable(out):
        raise cfg.ConfigError(f"{out} is not a run directory (it has no {rundir.RECORD}): "
                              f"--resume continues a run; leave it out to start one in a new "
                              f"or empty directory")
    return out


def _resumable(run_dir: Path) -> bool:
    """A run directory, or one an interrupt left before its run started: empty, or
    holding an empty checkpoints/ alone."""
    from lstm_jax.train import rundir

    if (run_dir / rundir.RECORD).exists():
        return True
    return run_dir.is_dir() and all(
        entry.name == "checkpoints" and entry.is_dir() and not any(entry.iterdir())
        for entry in run_dir.iterdir())


def _check_writable(flag: str, folder: Path) -> None:
    """Refuse a folder that cannot be made or written in, making nothing
    (``_files.writable_folder``)."""
    from lstm_jax._files import writable_folder
    from lstm_jax.train import config as cfg

    try:
        writable_folder(folder)
    except NotADirectoryError as error:
        raise cfg.ConfigError(f"{flag} {folder}: {error.filename} is a file") from None
    except OSError as error:
        raise cfg.ConfigError(f"{flag} {folder}: cannot write in {error.filename} "
                              f"({error.strerror})") from None


def _keep_freed_memory() -> None:
    """Before jax starts, for the commands that train: malloc keeps the large buffers XLA
    frees (``_machine.keep_freed_memory``). A step whose temporaries pass 32 MiB (runs
    trained at once; charlm, copy, indrnn_adding alone) otherwise maps them afresh, a
    page fault per 4 KiB, at every call: 10-20% of their step time (benchmarks/NOTES.md,
    "Many models at once", finding 3)."""
    from lstm_jax import _machine

    _machine.keep_freed_memory()


def _use_every_core() -> list | None:
    """One jax CPU device per core available to this process, set before jax starts, so
    that runs trained at once are split over the cores (``ModelParallel``). Returns the
    devices of a run trained alone: the first (a CPU device split this way is no faster
    for one run's batch), or None (all) where jax had already started (``main`` called
    from Python) or runs on an accelerator."""
    import os

    import jax

    try:
        jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
    except RuntimeError:  # the CPU backend is already initialised: its devices stay
        return None
    return jax.devices()[:1] if jax.default_backend() == "cpu" else None


def _print_runs(results: list[dict], group) -> int:
    """What ``train --seeds/--sweep`` ends with: each run's final evaluation and where it is."""
    for index, (result, prepared) in enumerate(zip(results, group), 1):
        run_dir = result["run_dir"]
        if result["already_finished"]:
            print(f"{run_dir} already finished at step {result['metrics']['step']}; nothing to do "
                  f"(a larger --steps extends it)")
            continue
        _print_metrics(f"{run_dir.name}: final evaluation", result["metrics"], result["baselines"],
                       prepared.task.baseline_note if index == len(group) else "")  # once
        print(f"  {run_dir}: metrics.jsonl, loss.png, checkpoints/")
    return 0


def _resumed_config(experiment, run_dir: Path, fields: list[str]):
    """The run's stored config; flags may repeat it, and a larger ``--steps`` extends it."""
    from lstm_jax.train import config as cfg
    from lstm_jax.train import rundir

    if not (run_dir / rundir.RECORD).exists():  # interrupted before it started: start it
        return cfg.cli(experiment.config(), fields, prog=f"lstm-jax train {experiment.name}")
    record, stored = rundir.read_record(run_dir)
    if record["experiment"] != experiment.name:
        raise cfg.ConfigError(f"{run_dir} is a run of {record['experiment']!r}, "
                              f"not {experiment.name!r}")
    given = cfg.cli(stored, fields, prog=f"lstm-jax train {experiment.name}")
    for name in sorted(cfg.explicit_fields(fields)):
        if name == "steps" and given.steps >= stored.steps:
            continue
        if getattr(given, name) != getattr(stored, name):
            raise cfg.ConfigError(
                f"{cfg.flag(name)} {getattr(given, name)!r} contradicts the run in "
                f"{run_dir}, whose {name} is {getattr(stored, name)!r}"
                + ("; --steps may only grow" if name == "steps" else ""))
    return given


# reproduce's options that say where the files go and what is shown, not what is trained:
# a summary's command leaves them out (``_what_reproduces``)
WHERE_AND_HOW = {
    "--runs": {"default": "runs", "help": "run directories go in RUNS/NAME/ (default runs)"},
    "--results": {"default": "experiments/results",
                  "help": "where the summary and figure go (default experiments/results)"},
    "--no-progress": {"action": "store_true", "help": "no progress bar"},
}


def _what_reproduces(argv: list[str]) -> str:
    """The command line a summary records: ``argv`` less ``WHERE_AND_HOW``'s options (a
    reader's ``--runs`` is their own), so the row's command is the one to rerun anywhere."""
    kept, skip = [], 0
    for word in argv:
        if skip:
            skip -= 1
        elif (option := word.split("=")[0]) in WHERE_AND_HOW:
            value_follows = "=" not in word and WHERE_AND_HOW[option].get("action") != "store_true"
            skip = 1 if value_follows else 0
        else:
            kept.append(word)
    return shlex.join(["lstm-jax", *kept])


def _reproduce(args, fields: list[str]) -> int:
    from lstm_jax.train import config as cfg
    from lstm_jax.train import experiments, interrupts, reproduce

    experiment = experiments.load(args.experiment)
    if "seed" in cfg.explicit_fields(fields):
        raise cfg.ConfigError("reproduce trains each variant with the row's seeds: choose them "
                              "with --seeds S ..., not --seed")
    for flag, folder in (("--runs", args.runs), ("--results", args.results)):
        _check_writable(flag, Path(folder))  # before hours of training, not after
    prog = f"lstm-jax reproduce {args.experiment}"
    command = shlex.join(["lstm-jax", *args.argv])
    _keep_freed_memory()
    devices = _use_every_core()  # a variant's seeds train at once, split over the cores
    try:
        summary = reproduce.reproduce(
            experiment, runs_dir=Path(args.runs), results_dir=Path(args.results),
            only=args.variants, chosen_seeds=_seeds(args.seeds),
            overrides=lambda config: cfg.cli(config, fields, prog=prog),
            progress=not args.no_progress, command=_what_reproduces(args.argv), devices=devices)
    except KeyboardInterrupt as stop:  # at a safe point, or at once (a second signal)
        print(f"lstm-jax: interrupted ({_signal_name(stop)}); the finished runs are kept and the "
              f"unfinished ones (a variant's seeds train at once) continue from their last "
              f"checkpoint. Continue with: {command}",
              file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    metric = summary["reference"]["metric"]
    print(f"{experiment.name} ({metric}, mean ± std over seeds):")
    for name, variant in summary["variants"].items():
        line = reproduce.baseline(variant, metric)
        print(f"  {name:20} {reproduce.ours(variant, metric)}"
              + (f"   (baseline {line:.4g})" if line is not None else ""))
    notes = [variant["baseline_note"] for variant in summary["variants"].values()]
    for note in dict.fromkeys(note for note in notes if note):  # each once, in order
        print(f"  baseline: {note}")
    results = Path(args.results)
    print(f"summary: {results / (experiment.name + '.json')}\nfigure:  "
          f"{results / (experiment.name + '.png')}"
          + (f" and {results / summary['figure']}" if summary["figure"] else "")
          + f"\ntable:   {results.parent / reproduce.TABLE_NAME}")
    return 0


def _results(args, fields: list[str]) -> int:
    from lstm_jax.train import interrupts, reproduce

    results = Path(args.results)
    summaries = reproduce.read_summaries(results)
    if not summaries:
        from lstm_jax.train.config import ConfigError

        raise ConfigError(f"no run summaries in {results}; make them with "
                          f"`lstm-jax reproduce NAME --results {results}`")
    drawn = []
    try:
        for summary in summaries:  # a figure each, then the table: stopped between them
            interrupts.check()
            reproduce.plot_summary(summary, results / f"{summary['experiment']}.png")
            drawn.append(f"{summary['experiment']}.png")
        interrupts.check()
    except KeyboardInterrupt as stop:  # at a safe point, or at once
        table = results.parent / reproduce.TABLE_NAME
        print(f"lstm-jax: interrupted ({_signal_name(stop)}); "
              + (f"redrew {', '.join(drawn)} in {results}; " if drawn else "")
              + f"{table} was not written. Start again with: {shlex.join(['lstm-jax', *args.argv])}",
              file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    print(f"{reproduce.write_table(results)}: {len(summaries)} experiments")
    return 0


def _interrupted_message(stop, run_dir: Path, args, many: bool) -> str:
    seeds = _seeds(args.seeds)
    chosen = ["--seeds", ",".join(map(str, seeds))] if seeds else []
    for word in args.sweep or []:
        chosen += ["--sweep", word]
    command = shlex.join(["lstm-jax", "train", args.experiment, *chosen, "--out", str(run_dir),
                          "--resume"])
    from lstm_jax.train import rundir

    if not any(run_dir.glob(f"{'*/' if many else ''}{rundir.RECORD}")):
        # stopped at once before the run's config was written: it is the command's own
        words = [*args.argv, *([] if args.out else ["--out", str(run_dir)]),
                 *([] if args.resume else ["--resume"])]
        command = shlex.join(["lstm-jax", *words])
        saved = "nothing was trained yet"
    elif not hasattr(stop, "checkpoint"):  # stopped at once before training: nothing changed
        saved = f"its checkpoints in {run_dir} are as they were"
    elif stop.checkpoint is None:
        saved = "no checkpoint was written yet, so resuming starts again from step 0"
    elif many:
        each, where = ("run's", "RUN") if args.sweep else ("seed's", "seedS")
        saved = (f"each {each} last checkpoint is step {stop.checkpoint}, in "
                 f"{run_dir / where / 'checkpoints'}")
    else:
        saved = f"the last checkpoint is {run_dir / 'checkpoints' / str(stop.checkpoint)}"
    step = getattr(stop, "step", None)
    where = f" at step {step}" if step is not None else ""
    return f"lstm-jax: interrupted ({_signal_name(stop)}){where}; {saved}. Continue with: {command}"


def _eval(args, fields: list[str]) -> int:
    from lstm_jax import train as lt

    if fields:
        raise lt.ConfigError(f"eval takes only a run directory, got {' '.join(fields)}")
    result = lt.evaluate(Path(args.run_dir))
    _print_metrics(f"{result['experiment']} at step {result['step']}", result["metrics"],
                   result["baselines"], result["baseline_note"])
    return 0


def _sample(args, fields: list[str]) -> int:
    from lstm_jax import train as lt
    from lstm_jax.train import interrupts

    trained = lt.load(Path(args.run_dir))
    if trained.task.decode is None:
        raise lt.ConfigError(f"{args.run_dir} is a run of {trained.experiment!r}, whose task "
                             f"has no text to sample")
    interrupts.check()  # before the sample is compiled and drawn
    text = trained.sample(args.prompt, args.length, temperature=args.temperature, seed=args.seed)
    interrupts.check()  # stopped: nothing printed (main says so)
    print(args.prompt + text)
    return 0


def _export(args, fields: list[str]) -> int:
    from lstm_jax.train import export  # light: jax loads once the arguments are checked

    out = Path(args.out)
    platforms = args.platforms.split(",") if args.platforms is not None else None
    description = export.export_run(Path(args.run_dir), out, fmt=args.format,
                                    platforms=platforms, batch=args.batch, time=args.time,
                                    step=args.step)
    print(export.summary(out, description))
    return 0


def _list(args, fields: list[str]) -> int:
    from lstm_jax import train as lt

    for name, description in lt.list_experiments().items():
        print(f"{name:20} {description}")
    return 0


def _bench(args, fields: list[str]) -> int:
    from lstm_jax import bench  # jax, flax: only once the command is bench
    from lstm_jax.train import ConfigError

    parser = _Parser(prog="lstm-jax bench", description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    args = parser.parse_args(fields)
    try:
        import torch  # noqa: F401  (the benchmark's reference)
    except ModuleNotFoundError:
        from lstm_jax._extras import pip_install

        raise ConfigError(f"`lstm-jax bench` needs torch: {pip_install('torch')}") from None
    return bench.run(args)


def _print_metrics(title: str, metrics: dict, baselines: dict, baseline_note: str = "") -> None:
    print(f"{title}:")
    shown = {k: v for k, v in metrics.items() if k not in ("split", "step", "final")}
    if len(shown) > 1 and "loss" not in baselines:
        shown.pop("loss", None)  # the task's own metrics say it better
    for name, value in shown.items():
        baseline = f"   (baseline {baselines[name]:.4g})" if name in baselines else ""
        print(f"  {name:10} {value:.4g}{baseline}")
    if baseline_note and set(baselines) & set(shown):
        print(f"  baseline: {baseline_note}")


# the words argparse takes for values rather than options: every word that starts as a
# negative number does, so that ``--seeds -1,2`` is the seeds -1 and 2, not the unknown
# option -1,2
NEGATIVE_NUMBERS = re.compile(r"^-\.?\d")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, as every other error of the command, and that
    reads ``-1,2`` as a value (``--seeds -1,2``), as it reads ``-1``, not as an option
    (``NEGATIVE_NUMBERS``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBERS  # 3.11's: ^-\d+$|^-\d*\.\d+$

    def error(self, message: str):
        from lstm_jax.train.config import ConfigError

        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _train_parser(parent=None) -> argparse.ArgumentParser:
    from lstm_jax.train.config import STEP_INPUTS

    kwargs = dict(usage=TRAIN_USAGE, add_help=False, allow_abbrev=False,  # --seed is not --seeds
                  description="Train an experiment; the config fields are listed by "
                              "`lstm-jax train NAME --help`.")
    train = parent.add_parser("train", help="train an experiment (see `lstm-jax list`)", **kwargs) \
        if parent else _Parser(prog="lstm-jax train", **kwargs)
    train.add_argument("experiment", nargs="?", help="a shipped experiment or your own .py file")
    train.add_argument("--seeds", nargs="+", action="extend", type=_seed_word, metavar="S,S,...",
                       help="train a run per seed at once, in DIR/seedS (one program "
                            "whose runs are split over the devices)")
    train.add_argument("--sweep", action="append", metavar="FIELD=V,V,...",
                       help="train a run per value at once, in DIR/FIELD=V (with --seeds: per "
                            "value and seed); repeated, every combination. FIELD: "
                            f"{', '.join(STEP_INPUTS)} or an option read at init, e.g. "
                            "cell_options.forget_bias")
    train.add_argument("--out", metavar="DIR", help="the run directory (default runs/EXPERIMENT-TIME)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("-h", "--help", action="store_true", help="show the config fields")
    train.set_defaults(run=_train)
    return train


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lstm-jax", description="Train LSTM/GRU experiments.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)
    _train_parser(commands)
    evaluate = commands.add_parser("eval", help="evaluate a run's latest checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.set_defaults(run=_eval)
    sample = commands.add_parser("sample", help="continue a prompt with a text run's model")
    sample.add_argument("run_dir")
    sample.add_argument("--prompt", required=True, help="the text the model reads first")
    sample.add_argument("--length", type=int, default=200, help="characters to draw")
    sample.add_argument("--temperature", type=float, default=1.0, help="0 draws the likeliest")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(run=_sample)
    export = commands.add_parser(
        "export", help="write a run's trained model as a StableHLO or ONNX file",
        description="Export the whole model of a run (embedding, recurrent layers, readout) "
                    "from its latest checkpoint; FILE.json beside it lists the inputs and "
                    "outputs. examples/serve.py answers requests with a StableHLO file.")
    export.add_argument("run_dir")
    export.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    export.add_argument("--format", choices=("stablehlo", "onnx"), default="stablehlo",
                        help="stablehlo (jax.export, read by jax alone) or onnx (jax2onnx, "
                             "read by onnxruntime); default stablehlo")
    export.add_argument("--platforms", metavar="P,P", help="StableHLO: lower for these, e.g. "
                        "cpu,cuda (default: this machine's)")
    export.add_argument("--batch", type=int, metavar="N", help="fix B (default: any)")
    export.add_argument("--time", type=int, metavar="N", help="fix T (default: any)")
    export.add_argument("--step", action="store_true", help="one step, (carry, x_t) -> "
                        "(carry, predictions), for streaming, instead of whole sequences")
    export.set_defaults(run=_export)
    commands.add_parser("list", help="list the experiments").set_defaults(run=_list)
    again = commands.add_parser(
        "reproduce", usage=REPRODUCE_USAGE, allow_abbrev=False,
        help="run an experiment's every variant and seed, and write its row of RESULTS.md",
        description="Train every variant x seed of an experiment (rerun to continue), then "
                    "write RESULTS/NAME.json, NAME.png and the RESULTS.md beside RESULTS. "
                    "Config fields (e.g. --steps 5) apply to every variant.")
    again.add_argument("experiment", help="a shipped experiment or your own .py file")
    again.add_argument("--variants", nargs="+", action="extend",
                       help="only these variants (default: all)")
    again.add_argument("--seeds", nargs="+", action="extend", type=_seed_word, metavar="S,S,...",
                       help="these seeds (default: its SEEDS)")
    for option, spec in WHERE_AND_HOW.items():
        again.add_argument(option, **spec)
    again.set_defaults(run=_reproduce)
    table = commands.add_parser("results", help="render RESULTS.md from the run summaries")
    table.add_argument("--results", default="experiments/results",
                       help="the summaries (default experiments/results); RESULTS.md goes "
                            "beside this folder")
    table.set_defaults(run=_results)
    # bench's options are read by _bench: building them here would import jax for every
    # command, and `lstm-jax --help` would take seconds
    commands.add_parser("bench", help="benchmark against flax and PyTorch (`lstm-jax bench "
                        "--help` lists its options)", add_help=False).set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from lstm_jax.train import interrupts  # light: taken before jax and orbax load

    with interrupts.deferred():
        try:
            code = _dispatch(argv)
        except KeyboardInterrupt as stop:  # a command that had written something says so itself
            print(f"lstm-jax: interrupted ({_signal_name(stop)}); nothing was written. Start "
                  f"again with: {shlex.join(['lstm-jax', *argv])}", file=sys.stderr)
            return getattr(stop, "exit_code", 130)
        except BrokenPipeError:  # what read the output stopped reading: `lstm-jax list | head`
            _stdout_to_nowhere()
            return 128 + signal.SIGPIPE
        signum = interrupts.pending()
        if signum is not None and code == 0:  # it came after the command's last safe point
            print(f"lstm-jax: interrupted ({signal.Signals(signum).name}) as the command "
                  f"ended; everything was written", file=sys.stderr)
            return 128 + signum
        return code


def _stdout_to_nowhere() -> None:
    """stdout pointed at /dev/null, so that Python's flush at exit does not raise on the
    closed pipe again, with a traceback (the recipe of Python's ``signal`` docs)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _signal_name(stop: KeyboardInterrupt) -> str:
    """The signal that stopped a command: ``Interrupted``'s or ``StoppedAtOnce``'s, and
    SIGINT for Python's own ``KeyboardInterrupt`` (outside ``interrupts.deferred``)."""
    return str(stop) or "SIGINT"


def _dispatch(argv: list[str]) -> int:
    from lstm_jax.train import arguments, interrupts
    from lstm_jax.train.config import ConfigError

    try:
        parser = _parser()
        args, rest = parser.parse_known_args(argv)
        if args.command not in ("train", "reproduce", "bench") and rest:
            raise ConfigError(f"unrecognized arguments: {' '.join(rest)} "
                              f"(see `lstm-jax {args.command} --help`)")
        interrupts.check()
        args.argv = argv  # the command line, as config.json records it
        with arguments.command_line():  # messages name --out, --resume, ... not run_dir=
            return args.run(args, rest)
    except ConfigError as error:
        print(f"lstm-jax: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not _run_failed(error):
            raise
        if args.command in READ_RUNS:
            print(f"lstm-jax: error: {error}", file=sys.stderr)  # a damaged or foreign checkpoint
            return 2
        print(f"lstm-jax: {error}", file=sys.stderr)
        return 1


READ_RUNS = ("eval", "sample", "export")  # commands that only read a run: its checkpoint is input


def _run_failed(error: Exception) -> bool:
    """Whether ``error`` ended a run that had started (a checkpoint that cannot be read or
    written, a diverged loss): one line, exit 1; or, for a command that only reads a run
    (``READ_RUNS``), a checkpoint that does not restore: bad input, as DESIGN.md counts a
    truncated or foreign checkpoint, so `error:` and exit 2. Their modules load jax and
    orbax, so they are imported only once an error is there, not for every `--help`."""
    from lstm_jax.train.checkpoint import CheckpointError
    from lstm_jax.train.loop import TrainingDiverged

    return isinstance(error, (CheckpointError, TrainingDiverged))


def _version() -> str:
    from lstm_jax import __version__

    return f"lstm-jax {__version__}"


if __name__ == "__main__":
    sys.exit(main())
