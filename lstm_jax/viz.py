"""Plots the notebooks share: activations, gate heatmaps, curves, bars, parity.

Every function draws values it is given (or, for ``plot_activations``, the cell's own
nonlinearities) and returns a ``matplotlib.figure.Figure`` built without pyplot, so
nothing is kept in a global figure list; a notebook shows it as the cell's last value
(after ``%matplotlib inline``), a script saves it with ``fig.savefig(path)``. Titles and
axis labels are required arguments: a figure without them explains nothing.

The core (cells, runners, layers) never imports this module or matplotlib.

>>> import numpy as np
>>> fig = plot_lines({"loss": np.array([1.0, 0.5, 0.25])}, title="Training",
...                  xlabel="step", ylabel="MSE", logy=True)
>>> fig.axes[0].get_title(), fig.axes[0].get_yscale()
('Training', 'log')
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 90  # small PNGs in committed notebooks

__all__ = ["DPI", "plot_activations", "plot_bars", "plot_frames", "plot_heatmaps", "plot_lines",
           "plot_parity"]


def _figure(ax, figsize):
    """The figure to draw on and its axes: ``ax``'s, or a new one-axes figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _legend(ax, loc: str, **kwargs) -> None:
    if loc == "outside":
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), **kwargs)
    else:
        ax.legend(loc=loc, **kwargs)


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_activations(cell=None, *, z_range: tuple[float, float] = (-6.0, 6.0), ax=None) -> Figure:
    """The gate nonlinearity σ and the cell nonlinearity tanh, side by side on one axes.

    Args:
      cell: an LSTM or GRU ``Cell``; its own ``config.gate_activation`` and
        ``config.activation`` are drawn. None draws ``jax.nn.sigmoid`` and ``jnp.tanh``.
      z_range: the pre-activations plotted.
      ax: draw on these axes instead of a new figure.

    >>> fig = plot_activations()
    >>> [line.get_label() for line in fig.axes[0].get_lines()[:2]]
    ['sigmoid σ(z): (0, 1), a valve', 'tanh(z): (−1, 1), centred on 0']
    """
    import jax
    import jax.numpy as jnp

    sigma = jax.nn.sigmoid if cell is None else cell.config.gate_activation
    tanh = jnp.tanh if cell is None else cell.config.activation
    z = np.linspace(*z_range, 241, dtype=np.float32)
    fig, ax = _figure(ax, (6.0, 3.4))
    ax.plot(z, np.asarray(sigma(z)), lw=2.5, label="sigmoid σ(z): (0, 1), a valve")
    ax.plot(z, np.asarray(tanh(z)), lw=2.5, label="tanh(z): (−1, 1), centred on 0")
    for level in (-1.0, 0.0, 1.0):
        ax.axhline(level, color="0.6", lw=0.8, ls="--")
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.legend(loc="upper left")
    _label(ax, "The two squashing functions of a gated cell",
           "pre-activation z (unitless)", "activation (unitless)")
    return fig


def plot_lines(
    ys: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    x: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    logx: bool = False,
    logy: bool = False,
    reference: tuple[float, str] | None = None,
    marks: Sequence[float] = (),
    mark_label: str = "marked step",
    points: bool = False,
    legend: str = "best",
    ax=None,
) -> Figure:
    """One line per entry of ``ys``, labelled by its key.

    Args:
      ys: label -> y values.
      title, xlabel, ylabel: the figure's texts (put units in the axis labels).
      x: the x values, shared by every line or one array per label; 0, 1, ... when None.
      logx, logy: logarithmic axes.
      reference: ``(value, label)`` of a dashed horizontal line, e.g. a baseline loss.
      marks: x values to mark with a dotted vertical line (e.g. the marked steps of the
        adding problem), labelled ``mark_label``.
      points: draw a dot at each point.
      legend: the legend's ``loc``, or ``"outside"``: right of the axes, clear of the data.
      ax: draw on these axes instead of a new figure.

    >>> fig = plot_lines({"a": [1, 2], "b": [3, 4]}, x=[10, 20], title="t", xlabel="x (s)",
    ...                  ylabel="y (m)", reference=(2.5, "baseline"))
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['a', 'b', 'baseline']
    """
    fig, ax = _figure(ax, (8.6 if legend == "outside" else 6.4, 3.6))
    for label, y in ys.items():
        y = np.asarray(y)
        if x is None:
            xv = np.arange(len(y))
        elif isinstance(x, Mapping):
            xv = np.asarray(x[label])
        else:
            xv = np.asarray(x)
        ax.plot(xv, y, label=label, marker="o" if points else None, ms=4)
    if reference is not None:
        value, name = reference
        ax.axhline(value, color="k", ls="--", lw=1.2, label=name)
    for j, t in enumerate(marks):
        ax.axvline(t, color="magenta", ls=":", lw=1.5, label=mark_label if j == 0 else None)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, legend)
    _label(ax, title, xlabel, ylabel)
    return fig


def plot_bars(
    series: Mapping[str, Sequence[float]],
    *,
    groups: Sequence[str],
    title: str,
    xlabel: str,
    ylabel: str,
    value_format: str = "%.2f",
    ax=None,
) -> Figure:
    """Grouped bars: for each group (e.g. a unit), one bar per entry of ``series``.

    Args:
      series: label -> one value per group; with several series a legend names them.
      groups: the group names, drawn under the x axis.
      title, xlabel, ylabel: the figure's texts.
      value_format: how the value written over each bar is formatted.
      ax: draw on these axes instead of a new figure.

    >>> fig = plot_bars({"kept": [0.5, 0.1], "written": [0.2, 0.7]}, groups=["unit 0", "unit 1"],
    ...                 title="t", xlabel="unit", ylabel="value")
    >>> [round(float(p.get_height()), 2) for p in fig.axes[0].patches]
    [0.5, 0.1, 0.2, 0.7]
    """
    n = len(series)
    fig, ax = _figure(ax, (8.4 if n > 1 else 6.4, 3.6))
    width = 0.8 / max(n, 1)
    positions = np.arange(len(groups))
    for k, (label, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        if values.shape != (len(groups),):
            raise ValueError(
                f"`series[{label!r}]` must have one value per group, shape ({len(groups)},), "
                f"got shape {values.shape}"
            )
        offset = (k - (n - 1) / 2) * width
        bars = ax.bar(positions + offset, values, width, label=label)
        ax.bar_label(bars, fmt=value_format, fontsize=8, padding=1)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(positions, list(groups))
    if n > 1:
        _legend(ax, "outside", fontsize=9)
    ax.margins(y=0.15)
    _label(ax, title, xlabel, ylabel)
    return fig


def plot_heatmaps(
    panels: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str = "time step t",
    ylabel: str = "unit",
    marks: Sequence[int] = (),
    mark_label: str = "marked step",
    row_labels: Sequence[str] | None = None,
    value_label: str = "value (unitless)",
) -> Figure:
    """One heatmap per entry of ``panels``, stacked, sharing the time axis.

    Args:
      panels: panel title -> (T, H) values, time along x and units along y. Panels whose
        values all lie in [0, 1] (gates) use a 0..1 colour scale, others a scale
        symmetric about 0 (cell state, hidden state).
      title: the figure's title.
      xlabel, ylabel: axis labels (the x label is drawn under the last panel only).
      marks: time steps to mark with a dotted vertical line on every panel.
      mark_label: the legend entry of those lines.
      row_labels: a name for each row (unit), e.g. the units' indices after sorting;
        0, 1, ... when None.
      value_label: the colour bars' label.

    >>> fig = plot_heatmaps({"f": np.full((5, 3), 0.9), "c": np.zeros((5, 3))}, title="x",
    ...                     marks=[1, 3])
    >>> [ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>"]
    ['f', 'c']
    """
    n = len(panels)
    fig = Figure(figsize=(7.5, 1.35 + 1.6 * n), dpi=DPI, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for k, (ax, (name, values)) in enumerate(zip(axes, panels.items())):
        values = np.asarray(values, dtype=float)
        if values.ndim != 2:
            raise ValueError(f"`panels[{name!r}]` must have shape (T, H), got {values.shape}")
        if values.min() >= 0.0 and values.max() <= 1.0:
            limits, cmap = (0.0, 1.0), "viridis"
        else:
            bound = float(np.abs(values).max()) or 1.0
            limits, cmap = (-bound, bound), "RdBu_r"
        image = ax.imshow(values.T, aspect="auto", origin="lower", cmap=cmap,
                          vmin=limits[0], vmax=limits[1], interpolation="nearest")
        fig.colorbar(image, ax=ax, pad=0.01).set_label(value_label, fontsize=8)
        if row_labels is not None:
            if len(row_labels) != values.shape[1]:
                raise ValueError(
                    f"`row_labels` has {len(row_labels)} names but `panels[{name!r}]` has "
                    f"{values.shape[1]} rows"
                )
            ax.set_yticks(np.arange(values.shape[1]), list(row_labels), fontsize=6)
        for j, t in enumerate(marks):
            ax.axvline(t, color="magenta", lw=1.2, ls=":",
                       label=mark_label if (j == 0 and k == 0) else None)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel)
    if len(marks):
        fig.legend(loc="outside lower right", fontsize=9)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title)
    return fig


def plot_parity(
    a,
    b,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ax=None,
) -> Figure:
    """Scatter of ``b`` against ``a`` with the line y = x: two computations that agree.

    The legend gives the largest absolute difference, max |b − a|.

    >>> fig = plot_parity([0.0, 1.0], [0.0, 1.0 + 1e-6], title="t", xlabel="a", ylabel="b")
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'values (largest difference 1.0e-06)'
    """
    a, b = np.ravel(np.asarray(a, dtype=float)), np.ravel(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"`a` has {a.size} values but `b` has {b.size}")
    fig, ax = _figure(ax, (4.2, 4.0))
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="y = x")
    diff = float(np.max(np.abs(b - a))) if a.size else 0.0
    ax.scatter(a, b, s=6, alpha=0.5, label=f"values (largest difference {diff:.1e})")
    ax.set_aspect("equal", adjustable="datalim")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", fontsize=8)
    _label(ax, title, xlabel, ylabel)
    return fig


def plot_frames(rows: Mapping[str, np.ndarray], *, title: str) -> Figure:
    """Frame sequences one above the other: ``rows`` maps a label (e.g. "true",
    "conv_lstm") to frames (T, H, W) of one sequence, drawn left to right in gray on
    the same scale (0 black, the largest value of all rows white).

    >>> frames = np.zeros((4, 6, 6)); frames[:, 2:4, 2:4] = 1.0
    >>> fig = plot_frames({"true": frames, "copy": frames[::-1]}, title="Moving digits")
    >>> len(fig.axes), fig.axes[4].get_ylabel()
    (8, 'copy')
    """
    steps = {np.shape(frames)[0] for frames in rows.values()}
    if len(steps) != 1:
        raise ValueError(f"every row needs the same number of frames, got {sorted(steps)}")
    (count,) = steps
    top = max(float(np.max(frames)) for frames in rows.values()) or 1.0
    fig = Figure(figsize=(0.9 * count + 0.8, 0.95 * len(rows) + 0.4), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(len(rows), count, squeeze=False)
    for row, (label, frames) in zip(axes, rows.items()):
        for t, ax in enumerate(row):
            ax.imshow(np.clip(frames[t], 0.0, None), cmap="gray", vmin=0.0, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label)
    fig.suptitle(title)
    return fig
