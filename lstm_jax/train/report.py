"""What a run writes besides checkpoints, and what it shows while it runs.

- ``MetricsLog``: metrics as JSONL, one object per line.
- ``plot_losses``: train and eval loss against step as a PNG, with the task's baselines
  (``save_png``: each figure written whole).
- ``TensorBoard``: the same scalars as TensorBoard event files in the run directory, so
  ``tensorboard --logdir runs`` shows every run.
- ``Progress``: a tqdm bar on a terminal, one plain line every ``every`` steps in a log.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Callable, TextIO

from lstm_jax._files import write_atomically
from lstm_jax.train import interrupts


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (left by a killed run before it resumes).

        A final evaluation kept becomes a plain one: the run goes on past it.
        """
        kept = [{k: v for k, v in record.items() if k != "final"}
                for record in self.read() if record["step"] <= step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


# ---- the loss plot ---------------------------------------------------------------------

def loss_baselines(records: list[dict], baselines: Mapping[str, float] | None,
                   loss_names: Collection[str] | None = None) -> dict[str, float]:
    """The baselines measured in the loss's units, which ``plot_losses`` draws.

    A baseline is on the loss axis when its name is ``"loss"`` or in ``loss_names``; by
    default (``loss_names=None``) also when the metric of that name equals the loss in
    every evaluation record (e.g. ``mse`` for a task whose loss is the MSE). Only
    positive finite values are kept (the axis is logarithmic).

    >>> records = [{"split": "eval", "step": 10, "loss": 0.5, "mse": 0.5, "acc": 0.9}]
    >>> loss_baselines(records, {"mse": 0.1667, "acc": 0.5})
    {'mse': 0.1667}
    >>> loss_baselines(records, {"mse": 0.1667, "acc": 0.5}, loss_names=["acc"])
    {'acc': 0.5}
    """
    evals = [r for r in records if r.get("split") == "eval"]

    def is_loss(name: str) -> bool:
        if name == "loss" or (loss_names is not None and name in loss_names):
            return True
        return loss_names is None and bool(evals) and all(
            name in r and math.isclose(r[name], r["loss"], rel_tol=1e-6, abs_tol=1e-12)
            for r in evals)

    return {name: float(value) for name, value in (baselines or {}).items()
            if is_loss(name) and math.isfinite(value) and value > 0}


def plain_log_axis(axis) -> None:
    """Log-scale tick labels as plain numbers ("0.06", "1", "1e-05") instead of
    matplotlib's mathtext ("6×10⁻²"), whose parser recursed past Python's limit in a
    run's final plot (RecursionError from pyparsing, seen with a loss between 0.86 and
    2). The ticks between powers of ten are labelled only where the axis spans less than
    about a decade, the ones matplotlib's ``LogFormatter`` chooses (over four decades, a
    label at every one overprinted its neighbours), but written as Python does: its own
    text for them is "6e−02"."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    class PlainMinor(LogFormatter):
        def __call__(self, value, pos=None):  # 3 digits: 10.5 and 11.5 are not "10", "12"
            return f"{value:.3g}" if super().__call__(value, pos) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(PlainMinor(labelOnlyBase=False))


def loss_figure(records: list[dict], title: str, baselines: Mapping[str, float] | None = None,
                loss_names: Collection[str] | None = None):
    """The figure ``plot_losses`` saves: train and eval loss against step, log-scaled.

    Each baseline on the loss axis (``loss_baselines``) is a dashed horizontal line
    labelled ``baseline <name> = <value>``. Non-finite and non-positive losses are left
    out. A ``matplotlib.figure.Figure`` built without pyplot (as ``lstm_jax.viz``'s): it
    leaves pyplot's backend and figures alone, and is freed like any object.
    """
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in records if r.get("split") == "train"]
    evals = [(r["step"], r["loss"]) for r in records if r.get("split") == "eval"]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for points, label, marker in ((train, "train", None), (evals, "eval", "o")):
        points = [(s, v) for s, v in points if math.isfinite(v) and v > 0]
        if points:  # a line through one point draws nothing: that point gets a marker
            ax.plot(*zip(*points), "-", marker=marker or ("o" if len(points) == 1 else None),
                    label=label)
    for index, (name, value) in enumerate(loss_baselines(records, baselines, loss_names).items()):
        ax.axhline(value, linestyle="--", color=f"C{index + 2}", linewidth=1.2,
                   label=f"baseline {name} = {value:.4g}")
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_losses(records: list[dict], path: Path, title: str,
                baselines: Mapping[str, float] | None = None,
                loss_names: Collection[str] | None = None) -> Path:
    """Train and eval loss against step, log-scaled, with baselines, as a PNG at ``path``.

    Args:
      records: the lines of ``metrics.jsonl``: ``{"split": "train"|"eval", "step", "loss",
        ...}``.
      path: the PNG to write.
      title: the plot's title.
      baselines: e.g. ``task.baselines`` (``{"mse": 0.1667}``); those in the loss's units
        are drawn as dashed lines (see ``loss_baselines``).
      loss_names: the baseline names in the loss's units, when not inferred.
    """
    return save_png(loss_figure(records, title, baselines, loss_names), path, dpi=100)


def save_png(fig, path: Path, dpi: int) -> Path:
    """``fig`` (a matplotlib Figure) as a PNG at ``path``, drawn in memory and written
    whole (``write_atomically``): stopped at any point, ``path`` holds the earlier
    figure or the new one, never part of a PNG. Returns ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_atomically(path, buffer.getvalue())
    return Path(path)


# ---- TensorBoard -----------------------------------------------------------------------

class TensorBoard:
    """Scalars as TensorBoard event files in ``run_dir`` (with ``tensorboardX``).

    ``tensorboard --logdir runs`` then lists each run directory as one run.

    Args:
      run_dir: the run directory; event files ``events.out.tfevents.*`` go into it.
      purge_step: on resume, the first step this process logs (the step resumed from
        + 1): TensorBoard then hides what an earlier process logged at or after it.

    >>> import tempfile
    >>> with TensorBoard(tempfile.mkdtemp()) as board:
    ...     board.scalars(100, {"loss": 0.25, "split": "train"}, prefix="train")
    ['train/loss']
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        self.run_dir = Path(run_dir)
        self._writer = SummaryWriter(logdir=str(self.run_dir), purge_step=purge_step,
                                     flush_secs=30)

    def scalars(self, step: int, values: Mapping[str, Any], prefix: str = "") -> list[str]:
        """Write each real number of ``values`` as ``<prefix>/<name>`` at ``step``.

        Other values (strings, booleans, None) are skipped. Returns the tags written.
        """
        tags = []
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            tag = f"{prefix}/{name}" if prefix else name
            self._writer.add_scalar(tag, float(value), global_step=int(step))
            tags.append(tag)
        return tags

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "TensorBoard":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ---- progress --------------------------------------------------------------------------

def progress_line(desc: str, done: int, total: int, postfix: Mapping[str, Any],
                  steps_per_s: float | None) -> str:
    """``adding: step 500/2000  loss 0.0123  12.3 steps/s``.

    >>> progress_line("adding", 500, 2000, {"loss": 0.012345}, 12.34)
    'adding: step 500/2000  loss 0.01235  12.3 steps/s'
    """
    parts = [f"{desc}: step {done}/{total}" if desc else f"step {done}/{total}"]
    parts += [f"{name} {_short(value)}" for name, value in postfix.items()]
    if steps_per_s is not None:
        parts.append(f"{steps_per_s:.1f} steps/s")
    return "  ".join(parts)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Progress of the training loop: a tqdm bar on a terminal, plain lines otherwise.

    Args:
      total: the last step.
      initial: the step the loop starts from (after a resume).
      desc: the name shown first, e.g. the experiment's.
      enabled: False shows nothing.
      every: in plain mode, a line each time the step reaches a multiple of ``every``
        (and at ``total``, and on leaving the ``with`` block early).
      bar: True: a tqdm bar, False: plain lines; default: a bar when ``stream`` is a
        terminal.
      stream: where to write; default ``sys.stderr``.
      clock: seconds, for steps/s (a parameter for tests).

    Plain lines carry no carriage return, so a log file reads well::

        adding: step 500/2000  loss 0.0123  12.3 steps/s
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True,
                 every: int = 100, *, bar: bool | None = None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if every <= 0:
            raise ValueError(f"`every` must be positive, got {every}")
        self.total, self.done, self.desc, self.every = total, initial, desc, every
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.bar = _isatty(self.stream) if bar is None else bar
        self.postfix: dict[str, Any] = {}
        self._clock = clock
        self._line_step, self._line_time = initial, clock()
        self._tqdm = None
        if enabled and self.bar:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=total, initial=initial, desc=desc, unit="step",
                              file=self.stream, dynamic_ncols=True)
            interrupts.bar_shown(self)  # an interrupt's line then starts on a line of its own

    def update(self, n: int = 1, postfix: Mapping[str, Any] | None = None) -> None:
        """``n`` more steps done; ``postfix`` (e.g. ``{"loss": 0.0123}``) replaces the last."""
        before, self.done = self.done, self.done + n
        if postfix is not None:
            self.postfix = dict(postfix)
        if not self.enabled:
            return
        if self._tqdm is not None:
            if postfix is not None:
                self._tqdm.set_postfix({k: _short(v) for k, v in self.postfix.items()},
                                       refresh=False)
            self._tqdm.update(n)
        elif self.done // self.every > before // self.every or self.done >= self.total > before:
            self._write_line()

    def close(self) -> None:
        """End the bar, or write the last position if no line showed it yet."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
            interrupts.bar_shown(self, False)
        elif self.enabled and self.done != self._line_step:
            self._write_line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write_line(self) -> None:
        now = self._clock()
        elapsed = now - self._line_time
        rate = (self.done - self._line_step) / elapsed if elapsed > 0 else None
        print(progress_line(self.desc, self.done, self.total, self.postfix, rate),
              file=self.stream, flush=True)
        self._line_step, self._line_time = self.done, now


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
