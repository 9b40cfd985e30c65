"""lstm_jax.viz: each figure shows the data it was given, with its title and labels."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import lstm_jax as lj
from lstm_jax import viz


def data_lines(ax):
    """The plotted lines, without the horizontal/vertical guide lines."""
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]


def test_core_does_not_import_matplotlib():
    code = "import sys, lstm_jax, lstm_jax.tasks; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_activations_draws_the_cells_own_functions():
    fig = viz.plot_activations()
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_title() and "pre-activation" in ax.get_xlabel() and ax.get_ylabel()
    sigmoid, tanh = data_lines(ax)
    z = np.asarray(sigmoid.get_xdata())
    np.testing.assert_allclose(sigmoid.get_ydata(), jax.nn.sigmoid(z), rtol=1e-6)
    np.testing.assert_allclose(tanh.get_ydata(), np.tanh(z), atol=1e-6)
    assert 0 < np.min(sigmoid.get_ydata()) and np.max(sigmoid.get_ydata()) < 1
    assert -1 < np.min(tanh.get_ydata()) < 0 < np.max(tanh.get_ydata()) < 1
    assert z.min() == -6 and z.max() == 6

    # A cell with other activations: those are drawn.
    cell = lj.lstm(3, gate_activation="tanh", activation="relu")
    first, second = data_lines(viz.plot_activations(cell, z_range=(-2, 2)).axes[0])
    z = np.asarray(first.get_xdata())
    np.testing.assert_allclose(first.get_ydata(), np.tanh(z), atol=1e-6)
    np.testing.assert_allclose(second.get_ydata(), np.maximum(z, 0), atol=1e-6)


def test_plot_lines_plots_each_series_with_its_x():
    ys = {"LSTM": np.array([1.0, 0.1, 0.01]), "RNN": np.array([1.0, 0.9, 0.8, 0.7])}
    x = {"LSTM": np.array([0, 10, 20]), "RNN": np.array([5, 6, 7, 8])}
    fig = viz.plot_lines(ys, x=x, title="Loss", xlabel="step (1)", ylabel="MSE (log)",
                         logy=True, reference=(1 / 6, "baseline"), marks=[3, 7],
                         mark_label="marker")
    (ax,) = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Loss", "step (1)", "MSE (log)")
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    lines = ax.get_lines()
    assert [line.get_label() for line in lines[:2]] == ["LSTM", "RNN"]
    for line, name in zip(lines, ["LSTM", "RNN"]):
        np.testing.assert_array_equal(line.get_xdata(), x[name])
        np.testing.assert_array_equal(line.get_ydata(), ys[name])
    reference = lines[2]
    assert reference.get_label() == "baseline"
    np.testing.assert_allclose(reference.get_ydata(), [1 / 6, 1 / 6])
    verticals = lines[3:]
    assert [v.get_xdata()[0] for v in verticals] == [3, 7]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["LSTM", "RNN", "baseline", "marker"]  # one entry for the marks


def test_plot_lines_shared_x_default_x_and_outside_legend():
    fig = viz.plot_lines({"a": [3.0, 2.0]}, title="t", xlabel="x", ylabel="y", logx=True,
                         points=True, legend="outside")
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [0, 1])
    assert line.get_marker() == "o" and ax.get_xscale() == "log"
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x0
    fig = viz.plot_lines({"a": [1, 2], "b": [3, 4]}, x=[10, 20], title="t", xlabel="x",
                         ylabel="y")
    assert [list(line.get_xdata()) for line in fig.axes[0].get_lines()] == [[10, 20], [10, 20]]


def test_plot_bars_heights_groups_and_legend():
    series = {"kept": [0.5, -0.1, 0.3], "written": [0.2, 0.7, -0.4]}
    fig = viz.plot_bars(series, groups=["u0", "u1", "u2"], title="Step", xlabel="unit",
                        ylabel="value (unitless)")
    (ax,) = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Step", "unit", "value (unitless)")
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, series["kept"] + series["written"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["u0", "u1", "u2"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["kept", "written"]
    values = [t.get_text() for t in ax.texts]
    assert "0.50" in values and "-0.40" in values
    # The two series sit side by side within each group.
    xs = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert xs[0] < xs[3] < xs[1] < xs[4]


def test_plot_bars_single_series_has_no_legend_and_checks_lengths():
    fig = viz.plot_bars({"memory": [551.8, 20.9]}, groups=["a", "b"], title="t", xlabel="x",
                        ylabel="MiB", value_format="%.1f")
    ax = fig.axes[0]
    assert ax.get_legend() is None
    assert [t.get_text() for t in ax.texts] == ["551.8", "20.9"]
    with pytest.raises(ValueError, match=r"series\['memory'\].*\(2,\).*\(3,\)"):
        viz.plot_bars({"memory": [1, 2, 3]}, groups=["a", "b"], title="t", xlabel="x", ylabel="y")


def test_plot_heatmaps_one_image_per_panel_time_along_x():
    T, H = 7, 3
    f = np.linspace(0.0, 1.0, T * H).reshape(T, H)
    c = np.linspace(-2.0, 1.0, T * H).reshape(T, H)
    fig = viz.plot_heatmaps({"forget gate": f, "cell state": c}, title="Gates",
                            ylabel="unit", marks=[2, 5])
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["forget gate", "cell state"]
    assert fig.get_suptitle() == "Gates"
    assert [ax.get_ylabel() for ax in panels] == ["unit", "unit"]
    assert panels[-1].get_xlabel() == "time step t"
    assert len(fig.axes) == 4  # two panels, two colour bars
    (image_f,), (image_c,) = (ax.get_images() for ax in panels)
    np.testing.assert_array_equal(image_f.get_array(), f.T)  # rows are units
    np.testing.assert_array_equal(image_c.get_array(), c.T)
    assert image_f.get_clim() == (0.0, 1.0)  # a gate: the full valve range
    assert image_c.get_clim() == (-2.0, 2.0)  # a state: symmetric about 0
    for ax in panels:
        assert [line.get_xdata()[0] for line in ax.get_lines()] == [2, 5]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["marked step"]
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [ax.get_ylabel() for ax in colorbars] == ["value (unitless)"] * 2


def test_plot_heatmaps_row_labels():
    fig = viz.plot_heatmaps({"f": np.full((4, 3), 0.5)}, title="t", row_labels=["7", "2", "5"],
                            value_label="gate (0..1)")
    panel, colorbar = fig.axes
    assert [t.get_text() for t in panel.get_yticklabels()] == ["7", "2", "5"]
    assert colorbar.get_ylabel() == "gate (0..1)"
    with pytest.raises(ValueError, match=r"`row_labels` has 2 names but `panels\['f'\]` has 3"):
        viz.plot_heatmaps({"f": np.zeros((4, 3))}, title="t", row_labels=["a", "b"])


def test_plot_heatmaps_accepts_jax_arrays_and_rejects_other_ranks():
    gates = lj.rnn(lj.lstm(4)).apply(
        lj.lstm(4).init(jax.random.key(0), 2), jnp.ones((1, 5, 2)), return_gates=True)[2]
    fig = viz.plot_heatmaps({"f": gates.f[0]}, title="t")
    (image,) = fig.axes[0].get_images()
    np.testing.assert_allclose(image.get_array(), np.asarray(gates.f[0]).T)
    assert not fig.legends  # no marks, no legend
    with pytest.raises(ValueError, match=r"panels\['f'\].*\(T, H\)"):
        viz.plot_heatmaps({"f": np.zeros(3)}, title="t")


def test_plot_parity_points_diagonal_and_difference():
    a = np.array([[0.0, 0.5], [1.0, -1.0]])
    b = a + np.array([[0.0, 1e-3], [0.0, 0.0]])
    fig = viz.plot_parity(a, b, title="Parity", xlabel="torch", ylabel="jax")
    (ax,) = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Parity", "torch", "jax")
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), np.stack([a.ravel(), b.ravel()], axis=1))
    (diagonal,) = ax.get_lines()
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [-1.0, 1.0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["values (largest difference 1.0e-03)", "y = x"]
    with pytest.raises(ValueError, match="`a` has 4 values but `b` has 3"):
        viz.plot_parity(a, b.ravel()[:3], title="t", xlabel="x", ylabel="y")


def test_figures_are_small_and_outside_pyplot(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = viz.plot_lines({"a": np.arange(100.0)}, title="t", xlabel="x", ylabel="y")
    assert plt.get_fignums() == before  # not registered with pyplot: nothing to close
    assert fig.dpi == viz.DPI <= 100
    path = tmp_path / "f.png"
    fig.savefig(path)
    assert path.stat().st_size < 100_000


def test_plot_on_given_axes():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    out = viz.plot_lines({"a": [1, 2]}, title="left", xlabel="x", ylabel="y", ax=left)
    viz.plot_bars({"b": [1.0]}, groups=["g"], title="right", xlabel="x", ylabel="y", ax=right)
    assert out is fig
    assert [ax.get_title() for ax in fig.axes] == ["left", "right"]
    assert [p.get_height() for p in right.patches] == [1.0]
