"""Reproduce an experiment's row of ``experiments/RESULTS.md``: every variant × seed.

An experiment module may define, besides ``get_config()``:

- ``VARIANTS``: ``{name: config changes}``, the models its row compares (default: one
  variant named after the experiment, with no changes). Option dicts in the changes are
  merged into the experiment's own: ``{"cell_options": {"forget_bias": 0.0}}``.
- ``SEEDS``: the seeds every variant runs (default ``(0,)``).
- ``REFERENCE``: what the table puts beside our numbers: ``source`` (paper, table or
  figure), ``published`` (the number and its setup, as text) and ``metric`` (the
  final-evaluation metric reported, default ``loss``); optionally ``value`` and
  ``variant`` (the published number and the variant it compares with: the table then
  states the gap) and ``note`` (what explains a gap: steps, split, model size).
- ``SAMPLE``: for a generative model, ``{"prompt": ..., "length": ..., "temperature": ...}``:
  each variant's first run continues the prompt (``Trained.sample``, seed 0) and the
  table shows the text.
- ``figure(run_dirs, path)``: a figure of its own (say, predicted frames), drawn from
  each variant's first run (``run_dirs``: variant -> run directory) into
  ``RESULTS/NAME_figure.png``; the row's section shows it under the learning curves.

``reproduce`` trains each run in ``RUNS/NAME/VARIANT-seedS``: the same command again
continues the unfinished runs and skips the finished ones. It then writes the row's
summary ``RESULTS/NAME.json`` (final metrics per seed, mean ± std, wall times,
evaluation curves, configs, the command, the commit, the machine) and its figure
``RESULTS/NAME.png``; ``write_table`` renders ``RESULTS.md`` from the summaries alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from lstm_jax import _machine
from lstm_jax._files import write_atomically
from lstm_jax.train import rundir
from lstm_jax.train.arguments import named
from lstm_jax.train.config import Config, ConfigError, GivenOptions, check_seeds, replace, to_dict
from lstm_jax.train.experiments import Experiment, load as load_experiment

if TYPE_CHECKING:
    from lstm_jax.tasks import Task

HIGHER_IS_BETTER = frozenset({"accuracy", "recall"})  # and their variants: accuracy_long, ...
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
TABLE_NAME = "RESULTS.md"


class Run(NamedTuple):
    """One run of a row: a variant of the experiment's config, with one seed."""

    variant: str
    seed: int
    config: Config


# ---- what an experiment asks for ------------------------------------------------------

def variants(experiment: Experiment) -> dict[str, dict]:
    """``{name: config changes}`` of the experiment's ``VARIANTS``, checked."""
    table = getattr(experiment.module, "VARIANTS", {experiment.name: {}})
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{experiment.source}: VARIANTS must be a non-empty dict "
                          f"{{name: config changes}}")
    for name, changes in table.items():
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise ConfigError(f"{experiment.source}: variant name {name!r} must be letters, "
                              f"digits and _.+=- (it names a directory)")
        if not isinstance(changes, dict):
            raise ConfigError(f"{experiment.source}: VARIANTS[{name!r}] must be a dict of "
                              f"config changes, got {type(changes).__name__}")
    return table


def seeds(experiment: Experiment) -> tuple[int, ...]:
    chosen = getattr(experiment.module, "SEEDS", (0,))
    if (not chosen or not all(isinstance(s, int) and not isinstance(s, bool) for s in chosen)
            or len(set(chosen)) < len(chosen)):
        raise ConfigError(f"{experiment.source}: SEEDS must be a non-empty tuple of distinct ints")
    return tuple(chosen)


def reference(experiment: Experiment) -> dict[str, Any]:
    """The experiment's ``REFERENCE``, with ``metric`` defaulting to ``loss``."""
    found = dict(getattr(experiment.module, "REFERENCE", {}))
    unknown = sorted(set(found) - {"source", "published", "metric", "value", "variant", "note"})
    if unknown:
        raise ConfigError(f"{experiment.source}: unknown REFERENCE key {unknown[0]!r}")
    found.setdefault("metric", "loss")
    if "variant" in found and found["variant"] not in variants(experiment):
        raise ConfigError(f"{experiment.source}: REFERENCE variant {found['variant']!r} is not "
                          f"one of VARIANTS")
    return found


def plan(experiment: Experiment, *, only: list[str] | None = None,
         chosen_seeds: list[int] | None = None,
         overrides: Callable[[Config], Config] = lambda config: config) -> list[Run]:
    """The runs of a row: each variant (or those in ``only``) with each seed (or those in
    ``chosen_seeds``), each run once: a variant or seed named twice is an error, as two
    runs of it would train in one directory.

    ``overrides`` applies the command line's config fields to each variant's config
    (e.g. ``--steps 5`` for a smoke run); the seed is set last.
    """
    table = variants(experiment)
    unknown = [name for name in only or () if name not in table]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r} of {experiment.name}; its variants: "
                          f"{', '.join(table)}")
    if only and len(set(only)) < len(only):
        raise ConfigError(f"{named('variants')} must be distinct, got {', '.join(only)}")
    row_seeds = check_seeds(chosen_seeds) if chosen_seeds else seeds(experiment)
    base = experiment.config()
    runs = []
    for name in only or table:
        changes = {key: GivenOptions(value) if isinstance(value, dict) else value
                   for key, value in table[name].items()}
        try:
            config = overrides(replace(base, **changes))
        except ConfigError as error:
            raise ConfigError(f"variant {name!r}: {error}") from None
        runs.extend(Run(name, seed, replace(config, seed=seed)) for seed in row_seeds)
    return runs


# ---- running a row ----------------------------------------------------------------------

def run_dir_of(runs_dir: Path, experiment: Experiment, run: Run) -> Path:
    return Path(runs_dir) / experiment.name / f"{run.variant}-seed{run.seed}"


def reproduce(experiment: Experiment | str, *, runs_dir: str | Path = "runs",
              results_dir: str | Path = "experiments/results", only: list[str] | None = None,
              chosen_seeds: list[int] | None = None,
              overrides: Callable[[Config], Config] = lambda config: config,
              progress: bool = True, command: str | None = None,
              log: Callable[[str], None] = print, devices=None) -> dict:
    """Train every run of the row (continuing unfinished ones), then write its summary
    ``results_dir/NAME.json``, figure ``NAME.png`` and the table ``RESULTS.md`` beside
    ``results_dir``. Returns the summary.

    Every run's config is checked (``prepare``) before the first one starts. The seeds of a
    variant are trained at once (``loop.run_many``: one program, the runs split
    over the devices), each in its own directory as if alone; ``devices`` are those of a
    run without others (default: all, the batch split over them).

    Raises:
      ConfigError: a mistake in the experiment or the overrides, or a run directory that
        holds a run of another config.
      interrupts.Interrupted: SIGINT/SIGTERM; the same call continues where it stopped.
    """
    from lstm_jax.train import loop

    if isinstance(experiment, str):
        experiment = load_experiment(experiment)
    runs = plan(experiment, only=only, chosen_seeds=chosen_seeds, overrides=overrides)
    sample_options(experiment)
    tasks, programs = {}, {}  # variant -> the task its runs record (the name of an own
    #   get_task()'s), and what trains it: its step's program and its loop's fields
    for run in runs:
        if run.variant not in tasks:  # one check per variant: the seed changes no shape
            prepared = loop.prepare(run.config, experiment=experiment)
            tasks[run.variant] = prepared.config.task
            programs[run.variant] = (loop.step_program(prepared),
                                     [getattr(run.config, name) for name in loop.LOOP_FIELDS])
    runs = [run._replace(config=dataclasses.replace(run.config, task=tasks[run.variant]))
            for run in runs]
    paths = [run_dir_of(runs_dir, experiment, run) for run in runs]
    resumes = [_check_existing(path, run.config) for path, run in zip(paths, runs)]
    summaries: dict[int, dict] = {}  # place in runs -> its run summary
    for places in _at_once(runs, paths, resumes, programs):
        group = [runs[k] for k in places]
        for k in places:
            log(f"[{k + 1}/{len(runs)}] {experiment.name} {runs[k].variant} seed {runs[k].seed}: "
                f"{paths[k]}" + (f" (with {len(places) - 1} more at once)" if k == places[0]
                                 and len(places) > 1 else ""))
        prepared = (loop.prepare_group([run.config for run in group], experiment=experiment)
                    if len(group) > 1
                    else [loop.prepare(group[0].config, experiment=experiment, devices=devices)])
        results = loop.run_many(prepared, [rundir.make(paths[k]) for k in places],
                                resume=resumes[places[0]], progress=progress, command=command)
        for k, one, result in zip(places, prepared, results):
            if result["already_finished"]:
                log(f"  {paths[k]} had finished at step {result['metrics']['step']}: kept as it is")
            summaries[k] = _run_summary(runs[k], paths[k], one.task)
    finished = [summaries[k] for k in range(len(runs))]
    summary = summarize(experiment, finished, command)
    first_runs: dict[str, Path] = {}  # variant -> the run directory of its first seed
    for run in finished:
        first_runs.setdefault(run["variant"], Path(run["run_dir"]))
    for name, variant in summary["variants"].items():
        variant["sample"] = _sample(experiment, first_runs[name])
    results_dir = Path(results_dir)
    summary["figure"] = _own_figure(experiment, first_runs, results_dir)
    write_summary(summary, results_dir)
    write_table(results_dir)
    return summary


def _at_once(runs: list[Run], paths: list[Path], resumes: list[bool],
             programs: dict[str, tuple]) -> list[list[int]]:
    """The places in ``runs`` of each group trained at once (``loop.run_many``): the runs of
    one program (``programs``: each variant's; a variant's seeds, and the variants that
    differ only in values the step does not compile, as ``train --sweep``) that stand at
    the same point (not started, or the same latest checkpoint)."""
    groups: dict[str, list[int]] = {}
    for k, (run, path, resume) in enumerate(zip(runs, paths, resumes)):
        steps = [int(p.name) for p in (path / "checkpoints").glob("*") if p.name.isdigit()]
        groups.setdefault(repr((programs[run.variant], resume, max(steps, default=None))), []).append(k)
    return list(groups.values())


def _check_existing(path: Path, config: Config) -> bool:
    """Whether ``path`` holds this run already (to be continued); a run of another config
    there is an error, except a smaller ``steps`` (the run is extended)."""
    if not (path / rundir.RECORD).exists():
        return path.exists()  # made, but stopped before it started: start it there
    _, stored = rundir.read_record(path)
    different = [name for name, value in to_dict(config).items()
                 if to_dict(stored)[name] != value and not (name == "steps" and value > stored.steps)]
    if different:
        name = different[0]
        raise ConfigError(f"{path} holds a run whose {name} is {getattr(stored, name)!r}, not "
                          f"{getattr(config, name)!r}; remove it or choose another {named('runs')}")
    return True


def sample_options(experiment: Experiment) -> dict | None:
    """The experiment's ``SAMPLE``, checked: ``prompt``, ``length`` and ``temperature``."""
    options = getattr(experiment.module, "SAMPLE", None)
    if options is not None and (not isinstance(options, dict)
                                or set(options) != {"prompt", "length", "temperature"}):
        raise ConfigError(f"{experiment.source}: SAMPLE must be a dict of prompt, length and "
                          f"temperature")
    return options


def _sample(experiment: Experiment, run_dir: Path) -> dict | None:
    """The experiment's ``SAMPLE`` drawn from the run in ``run_dir`` (None without one)."""
    from lstm_jax.train import loop

    options = sample_options(experiment)
    if options is None:
        return None
    trained = loop.load(run_dir)
    text = trained.sample(options["prompt"], options["length"],
                          temperature=options["temperature"], seed=0)
    return {**options, "seed": 0, "text": text if isinstance(text, str) else list(map(int, text))}


def _own_figure(experiment: Experiment, run_dirs: dict[str, Path], results_dir: Path) -> str | None:
    """The experiment's own ``figure(run_dirs, path)`` (none without one), drawn from each
    variant's first run (``run_dirs``: variant -> its run directory) into
    ``results_dir/NAME_figure.png``; its file name, which the row's section shows."""
    draw = getattr(experiment.module, "figure", None)
    if draw is None:
        return None
    path = results_dir / f"{experiment.name}_figure.png"
    results_dir.mkdir(parents=True, exist_ok=True)
    draw(run_dirs, path)
    return path.name


def _run_summary(run: Run, path: Path, task: Task) -> dict:
    from lstm_jax.train.report import MetricsLog

    records = MetricsLog(path / "metrics.jsonl").read()
    evals = [_metrics_of(r) for r in records if r.get("split") == "eval"]
    lines = [r for r in records if "elapsed_s" in r]  # its share of its group's time
    at_once = lines[-1].get("at_once", 1) if lines else 1
    return {"variant": run.variant, "seed": run.seed, "run_dir": str(path), "task": task.name,
            "config": to_dict(run.config), "baselines": _floats(task.baselines),
            "baseline_note": task.baseline_note,
            "final": evals[-1] if evals else {}, "at_once": at_once,
            "wall_s": lines[-1]["elapsed_s"] / at_once if lines else None,
            "curve": evals}


def _metrics_of(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("split", "final")}


def _floats(values: dict) -> dict:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}


# ---- the summary -------------------------------------------------------------------------

def summarize(experiment: Experiment, runs: list[dict], command: str | None) -> dict:
    """The row's summary: per variant the final metrics of every seed, their mean and
    standard deviation, wall times and baselines; the runs with their curves; how it was
    made (command, commit, machine, versions)."""
    by_variant: dict[str, list[dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    table = variants(experiment)
    return {
        "experiment": experiment.name,
        "description": experiment.description,
        "reference": reference(experiment),
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": machine(),
        "versions": rundir.versions(),
        "variants": {name: _variant_summary(table[name], group)
                     for name, group in by_variant.items()},
        "runs": runs,
    }


def _variant_summary(changes: dict, runs: list[dict]) -> dict:
    names = [name for name in runs[0]["final"] if name != "step"]
    final = {name: [run["final"][name] for run in runs] for name in names}
    config = {k: v for k, v in runs[0]["config"].items() if k != "seed"}
    return {"changes": changes, "task": runs[0]["task"], "config": config,
            "baselines": runs[0]["baselines"], "baseline_note": runs[0]["baseline_note"],
            "seeds": [run["seed"] for run in runs],
            "final": final, "mean": {k: _mean(v) for k, v in final.items()},
            "std": {k: _std(v) for k, v in final.items()},
            "wall_s": [run["wall_s"] for run in runs]}


def baseline(variant: dict, metric: str) -> float | None:
    """The task's baseline of ``metric``; for ``loss``, that of the metric the loss equals
    (an MSE task's ``mse``)."""
    found = variant["baselines"].get(metric)
    if found is None and metric == "loss":
        same = [name for name in variant["baselines"]
                if name in variant["mean"] and math.isclose(variant["mean"][name],
                                                             variant["mean"]["loss"])]
        found = variant["baselines"][same[0]] if same else None
    return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _std(values: list[float]) -> float:
    """The sample standard deviation (0 for one value)."""
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _commit() -> dict | None:
    """The git commit of the code that ran, and whether it had uncommitted changes (the
    summaries and the table being written do not count)."""
    where = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                 "--untracked-files=no", "--", ".",
                                 ":(exclude)experiments/results", f":(exclude)experiments/{TABLE_NAME}"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None  # an installed copy, not a checkout
    return {"sha": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine() -> dict:
    """The CPU (model, cores, vector extensions that change the speed) and the devices."""
    import jax

    return {**_machine.cpu(), "devices": [str(d) for d in jax.devices()]}


def write_summary(summary: dict, results_dir: Path) -> Path:
    """``NAME.json`` and its figure ``NAME.png`` in ``results_dir``, written atomically."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{summary['experiment']}.json"
    write_atomically(path, json.dumps(summary, indent=1) + "\n")
    plot_summary(summary, results_dir / f"{summary['experiment']}.png")
    return path


def read_summaries(results_dir: Path) -> list[dict]:
    summaries = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            summaries.append(json.loads(path.read_text()))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path} is not valid JSON ({error}); rerun its experiment") from None
    return summaries


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: accuracy and recall, also measured on part of
    the data (``accuracy_long``, ``recall_2``); every other metric is a loss or an error.

    >>> higher_is_better("accuracy_long"), higher_is_better("loss"), higher_is_better("mse")
    (True, False, False)
    """
    return metric.split("_")[0] in HIGHER_IS_BETTER


# ---- the figure ----------------------------------------------------------------------------

def _panel(run_or_variant: dict) -> str:
    """The task a variant runs (its task and task options): variants on different tasks
    are drawn on separate axes."""
    options = run_or_variant["config"]["task_options"]
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return run_or_variant["task"] + (f" ({shown})" if shown else "")


def plot_summary(summary: dict, path: Path) -> Path:
    """``summary_figure(summary)`` saved to ``path``, written whole (``save_png``)."""
    from lstm_jax.train.report import save_png

    return save_png(summary_figure(summary), path, dpi=90)


def summary_figure(summary: dict):
    """The row's learning curves: the reported metric on the evaluation set against the
    step, each variant's mean over seeds with its min-max band, one axis per task, the
    baselines dashed, under the experiment's description (wrapped to the figure's width).
    Drawn without pyplot, so a notebook's backend is left alone."""
    import textwrap

    from matplotlib.figure import Figure

    from lstm_jax.train.report import plain_log_axis

    metric = summary["reference"]["metric"]
    panels: dict[str, list[str]] = {}
    for name, variant in summary["variants"].items():
        panels.setdefault(_panel(variant), []).append(name)
    fig = Figure(figsize=(6.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (panel, names) in zip(axes[0], panels.items()):
        for index, name in enumerate(names):
            curves = [run["curve"] for run in summary["runs"] if run["variant"] == name]
            steps = [point["step"] for point in curves[0]]
            values = [[point.get(metric, math.nan) for point in curve[:len(steps)]]
                      for curve in curves if len(curve) >= len(steps)]
            mean = [_mean(column) for column in zip(*values)]
            ax.plot(steps, mean, "o-", color=f"C{index}", markersize=3,
                    label=f"{name} ({len(values)} seed{'s' * (len(values) > 1)})")
            if len(values) > 1:
                ax.fill_between(steps, [min(c) for c in zip(*values)],
                                [max(c) for c in zip(*values)], color=f"C{index}", alpha=0.2)
        line = baseline(summary["variants"][names[0]], metric)
        if line is not None:
            ax.axhline(line, linestyle="--", color="gray", label=f"baseline {line:.4g}")
        ref = summary["reference"]
        if "value" in ref and ref.get("variant") in names:
            ax.axhline(ref["value"], linestyle=":", color="black",
                       label=f"published {ref['variant']} {ref['value']:.4g}")
        lower_better = not higher_is_better(metric)
        if lower_better and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()
                                if math.isfinite(v)):
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        ax.set_xlabel("step")
        ax.set_ylabel(f"eval {metric}" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(panel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    title = f"{summary['experiment']}: {summary['description']}"
    width = fig.get_figwidth()  # inches: about 12 characters each at 10 points
    fig.suptitle(textwrap.fill(title, width=int(12 * width)), fontsize=10)
    fig.tight_layout()
    return fig


# ---- the table -----------------------------------------------------------------------------

def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.3f}".rstrip("0").rstrip(".")


def ours(variant: dict, metric: str) -> str:
    """``0.912 ± 0.004`` (mean ± std over the seeds), or the one seed's value."""
    if metric not in variant["mean"]:
        return "n/a"
    text = _number(variant["mean"][metric])
    if len(variant["seeds"]) > 1:
        text += f" ± {variant['std'][metric]:.2g}"
    return text


def gap(summary: dict) -> str | None:
    """How far the compared variant is from the published value, in words."""
    ref = summary["reference"]
    if "value" not in ref or ref.get("variant") not in summary["variants"]:
        return None
    metric, published = ref["metric"], float(ref["value"])
    mean = summary["variants"][ref["variant"]]["mean"].get(metric)
    if mean is None:
        return None
    higher = higher_is_better(metric)
    better = mean >= published if higher else mean <= published
    scale, unit = (100, " points") if higher and published <= 1 else (1, "")
    difference = abs(mean - published) * scale
    verdict = "at or better than" if better else "short of"
    return (f"{ref['variant']}: {_number(mean)} against the published {_number(published)}, "
            f"{verdict} it by {difference:.2f}{unit}")


def _setup(variant: dict) -> str:
    c = variant["config"]
    options = "".join(f", {k}={v}" for k, v in c["task_options"].items())
    layers = f"{c['num_layers']} {'bidirectional ' * c['bidirectional']}layer"
    readout = f", {c['readout']} readout" if c["readout"] != "task" else ""
    return (f"{variant['task']}{options}; H={c['hidden_size']}, {layers}"
            f"{'s' * (c['num_layers'] > 1)}{readout}, {c['steps']} steps of batch "
            f"{c['batch_size']}, lr {c['learning_rate']:g}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def render_table(summaries: list[dict], folder: str = "results") -> str:
    """``RESULTS.md``: one table row per experiment, then a section per experiment with
    its figure, every variant's numbers, the gap to the paper and how it was run."""
    lines = [
        "# Experiments: published recurrent-network results, reproduced",
        "",
        f"Generated by `lstm-jax results` from the run summaries in `{folder}/` (written by "
        "`lstm-jax reproduce NAME`); do not edit by hand. Our numbers are final evaluations "
        "on held-out data, mean ± sample standard deviation over the seeds; wall time is "
        "the training time of all the row's runs on the machine named in its section.",
        "",
        "| experiment | source | published | ours | our setup | seeds | wall time | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ref, metric = s["reference"], s["reference"]["metric"]
        first = next(iter(s["variants"].values()))
        numbers = "; ".join(f"{name} {ours(v, metric)}" for name, v in s["variants"].items())
        wall = sum(w for v in s["variants"].values() for w in v["wall_s"] if w)
        seed_list = ", ".join(str(seed) for seed in first["seeds"])
        lines.append(f"| [{s['experiment']}](#{s['experiment']}) | {ref.get('source', '')} | "
                     f"{ref.get('published', '')} | {metric}: {numbers} | {_setup(first)} | "
                     f"{seed_list} | {_minutes(wall)} | `{s['command'] or ''}` |")
    for s in summaries:
        lines += _section(s, folder)
    return "\n".join(lines) + "\n"


def _section(s: dict, folder: str) -> list[str]:
    ref, metric = s["reference"], s["reference"]["metric"]
    own = [f"![{s['experiment']}: its own figure]({folder}/{s['figure']})", ""] if s.get("figure") else []
    lines = ["", f"## {s['experiment']}", "", s["description"], "",
             f"![{s['experiment']} learning curves]({folder}/{s['experiment']}.png)", "", *own,
             f"| variant | changes | {metric} | baseline | other final metrics | "
             f"wall time per run |", "|---|---|---|---|---|---|"]
    for name, v in s["variants"].items():
        changes = ", ".join(f"{k}={val}" for k, val in v["changes"].items()) or "(the config)"
        line = baseline(v, metric)
        reference_value = _number(line) if line is not None else ""
        others = ", ".join(f"{k} {ours(v, k)}" for k in v["mean"] if k != metric)
        walls = [w for w in v["wall_s"] if w]
        per_run = _minutes(_mean(walls)) if walls else ""
        lines.append(f"| {name} | {changes} | {ours(v, metric)} | {reference_value} | {others} | "
                     f"{per_run} |")
    lines.append("")
    words = gap(s)
    if words:
        lines += [f"Against the paper: {words}.", ""]
    if ref.get("note"):
        lines += [ref["note"], ""]
    for name, v in s["variants"].items():
        drawn = v.get("sample")
        if drawn:
            lines += [f"{name}, continuing {drawn['prompt']!r} at temperature "
                      f"{drawn['temperature']} (seed {drawn['seed']}):", "", "```text",
                      drawn["prompt"] + str(drawn["text"]), "```", ""]
    together = max((run.get("at_once", 1) for run in s["runs"]), default=1)
    if together > 1:
        lines += [f"Runs trained at once, up to {together} as one program: a variant's "
                  f"seeds (`lstm-jax train --seeds`), with the variants that differ only in "
                  f"values the step does not compile (`--sweep`); a run's wall time is its "
                  f"share of theirs.", ""]
    commit = s.get("commit") or {}
    made = f"commit {commit['sha'][:10]}" + (" (with uncommitted changes)" if commit.get("dirty") else "") \
        if commit else "an installed copy"
    m = s["machine"]
    lines.append(f"Summarised {s['date'][:10]} at {made} on {_machine.describe(m)}, "
                 f"{', '.join(m['devices'])}; each "
                 f"run's config.json records the command, versions and devices that trained it.")
    return lines


def write_table(results_dir: str | Path) -> Path:
    """Render ``RESULTS.md`` beside ``results_dir`` from its summaries; return its path."""
    results_dir = Path(results_dir)
    path = results_dir.parent / TABLE_NAME
    write_atomically(path, render_table(read_summaries(results_dir), results_dir.name))
    return path
