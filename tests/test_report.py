"""What a run writes and shows: JSONL metrics, the loss plot, TensorBoard events, progress."""

import io
import math
import struct

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lstm_jax.train.report import (MetricsLog, Progress, TensorBoard, loss_baselines,  # noqa: E402
                                   loss_figure, plot_losses, progress_line)

RECORDS = [
    {"split": "train", "step": 10, "loss": 0.4},
    {"split": "train", "step": 20, "loss": 0.2},
    {"split": "eval", "step": 20, "loss": 0.25, "mse": 0.25, "accuracy": 0.7},
    {"split": "train", "step": 30, "loss": float("nan")},
    {"split": "train", "step": 40, "loss": 0.05},
    {"split": "eval", "step": 40, "loss": 0.06, "mse": 0.06, "accuracy": 0.9, "final": True},
]


# ---- metrics.jsonl ------------------------------------------------------------------

def test_metrics_log_appends_reads_and_truncates(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    assert log.read() == []
    for record in RECORDS:
        log.write(record)
    assert [r["step"] for r in log.read()] == [10, 20, 20, 30, 40, 40]
    assert math.isnan(log.read()[3]["loss"])
    log.truncate_after(20)
    assert log.read() == RECORDS[:3]


# ---- the loss plot ------------------------------------------------------------------

def test_baselines_on_the_loss_axis_are_inferred_or_named():
    baselines = {"mse": 0.1667, "accuracy": 0.5}
    assert loss_baselines(RECORDS, baselines) == {"mse": 0.1667}  # mse == loss in every eval
    assert loss_baselines(RECORDS, baselines, loss_names=["accuracy"]) == {"accuracy": 0.5}
    assert loss_baselines(RECORDS, {"loss": 0.3, "mse": 0.0}) == {"loss": 0.3}  # 0: not on a log axis
    assert loss_baselines(RECORDS[:2], baselines) == {}  # no evaluation: nothing to infer from
    assert loss_baselines(RECORDS, None) == {}


def lines_by_label(fig):
    (ax,) = fig.axes
    return {line.get_label(): line for line in ax.get_lines()}


def test_loss_figure_draws_curves_and_a_labelled_dashed_baseline():
    fig = loss_figure(RECORDS, "adding (lstm, H=16)", {"mse": 1 / 6, "accuracy": 0.5})
    try:
        (ax,) = fig.axes
        lines = lines_by_label(fig)
        assert sorted(lines) == ["baseline mse = 0.1667", "eval", "train"]
        assert list(lines["train"].get_xdata()) == [10, 20, 40]  # the NaN is left out
        assert list(lines["train"].get_ydata()) == [0.4, 0.2, 0.05]
        assert list(lines["eval"].get_xdata()) == [20, 40] and lines["eval"].get_marker() == "o"
        baseline = lines["baseline mse = 0.1667"]
        assert baseline.get_linestyle() == "--"
        assert list(baseline.get_ydata()) == [1 / 6, 1 / 6]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "train", "eval", "baseline mse = 0.1667"]
        assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss (log scale)"
        assert ax.get_yscale() == "log" and ax.get_title() == "adding (lstm, H=16)"
    finally:
        plt.close(fig)


def test_the_plots_leave_a_notebooks_backend_and_pyplot_alone(tmp_path):
    from lstm_jax.train import reproduce

    summary = {"experiment": "tiny", "description": "tiny adding problem",
               "reference": {"metric": "mse", "value": 0.01, "variant": "lstm"},
               "variants": {"lstm": {"task": "adding", "config": {"task_options": {"length": 6}},
                                     "baselines": {"mse": 1 / 6}, "mean": {"mse": 0.1}}},
               "runs": [{"variant": "lstm", "curve": [{"step": 2, "mse": 0.2},
                                                      {"step": 4, "mse": 0.1}]}]}
    matplotlib.use("svg")  # the user's backend: a notebook's inline one, say
    try:
        figures = plt.get_fignums()
        plot_losses(RECORDS, tmp_path / "loss.png", "t", {"mse": 1 / 6})
        reproduce.plot_summary(summary, tmp_path / "tiny.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
    finally:
        matplotlib.use("Agg")
    for name in ("loss.png", "tiny.png"):
        assert matplotlib.image.imread(tmp_path / name).ndim == 3


def test_a_long_description_is_wrapped_inside_the_summary_figure():
    from lstm_jax.train import reproduce

    description = ("parity of a bit string (lengths 1-40, tested at 80 and 160): LSTM, GRU, "
                   "sLSTM vs minGRU/minLSTM, linear recurrences that cannot count mod 2")
    summary = {"experiment": "parity", "description": description,
               "reference": {"metric": "accuracy"},
               "variants": {"lstm": {"task": "parity", "config": {"task_options": {}},
                                     "baselines": {}, "mean": {"accuracy": 1.0}}},
               "runs": [{"variant": "lstm", "curve": [{"step": 2, "accuracy": 0.5},
                                                      {"step": 4, "accuracy": 1.0}]}]}
    fig = reproduce.summary_figure(summary)
    fig.canvas.draw()
    title = fig._suptitle
    assert title.get_text().replace("\n", " ") == f"parity: {description}"
    assert "\n" in title.get_text()
    inside = fig.bbox.frozen()
    box = title.get_window_extent()
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and box.y1 <= inside.y1


def test_loss_figure_without_baselines_has_no_dashed_line():
    fig = loss_figure(RECORDS, "t")
    try:
        assert sorted(lines_by_label(fig)) == ["eval", "train"]
    finally:
        plt.close(fig)


def test_a_train_curve_of_one_point_is_drawn_as_a_marker():
    """A run so short that it logs one train point (``--steps 20`` at ``log_every`` 20)
    drew a line of one point, which does not show."""
    records = [{"split": "train", "step": 20, "loss": 0.3},
               {"split": "eval", "step": 20, "loss": 0.2}]
    fig = loss_figure(records, "t")
    try:
        lines = lines_by_label(fig)
        assert lines["train"].get_marker() == "o" and lines["eval"].get_marker() == "o"
        assert list(lines["train"].get_xdata()) == [20]
    finally:
        plt.close(fig)
    fig = loss_figure(RECORDS, "t")
    try:  # a curve of several points stays a bare line
        assert lines_by_label(fig)["train"].get_marker() in ("None", None, "")
    finally:
        plt.close(fig)


def test_the_log_axis_labels_are_plain_text_not_mathtext():
    """matplotlib's mathtext labels ("6×10⁻¹") went through pyparsing, which recursed past
    Python's limit in a run's final plot; plain labels never reach it."""
    records = [{"split": "train", "step": s, "loss": 2.0 - s / 2500} for s in range(50, 2001, 50)]
    fig = loss_figure(records, "t")
    fig.canvas.draw()
    axis = fig.axes[0].yaxis
    labels = [t.get_text() for t in axis.get_majorticklabels() + axis.get_minorticklabels()]
    assert {"1", "2"} <= set(labels) and not any("$" in label for label in labels)


@pytest.mark.parametrize("low, high", [(0.048, 0.2), (9.4, 11.7), (0.0009, 0.35)])
def test_each_log_axis_label_reads_as_its_ticks_value(low, high):
    """A plain number, distinct from the others: matplotlib's own labels between powers
    of ten read "6e−02" (its minus sign, not Python's), and two significant digits would
    write the ticks at 10.5 and 11.5 as "10" and "12"."""
    records = [{"split": "train", "step": s, "loss": low + (high - low) * s / 1000}
               for s in range(0, 1001, 50)]
    fig = loss_figure(records, "t")
    try:
        fig.canvas.draw()
        axis = fig.axes[0].yaxis
        low_view, high_view = axis.get_view_interval()
        labelled = [(tick.get_loc(), tick.label1.get_text())
                    for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                    if tick.label1.get_text() and low_view <= tick.get_loc() <= high_view]
        assert len(labelled) >= 2
        assert len({text for _, text in labelled}) == len(labelled)
        for value, text in labelled:
            assert float(text) == pytest.approx(value, rel=1e-3)
    finally:
        plt.close(fig)


def test_plot_losses_writes_a_readable_png_and_closes_its_figure(tmp_path):
    open_before = plt.get_fignums()
    path = plot_losses(RECORDS, tmp_path / "loss.png", "adding", baselines={"mse": 1 / 6})
    assert path == tmp_path / "loss.png"
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (400, 700)  # figsize (7, 4) at 100 dpi
    assert plt.get_fignums() == open_before


# ---- TensorBoard --------------------------------------------------------------------

def read_events(path):
    """The Event protos of a TFRecord file, each record's two CRCs checked."""
    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    def masked(data):
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    data, events, offset = path.read_bytes(), [], 0
    while offset < len(data):
        header = data[offset: offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8: offset + 12])
        body = data[offset + 12: offset + 12 + length]
        (body_crc,) = struct.unpack("<I", data[offset + 12 + length: offset + 16 + length])
        assert header_crc == masked(header) and body_crc == masked(body)
        events.append(Event.FromString(body))
        offset += 16 + length
    return events


def scalars_in(run_dir):
    (path,) = run_dir.glob("events.out.tfevents.*")
    return [(event.step, value.tag, value.simple_value) for event in read_events(path)
            for value in event.summary.value]


def test_tensorboard_writes_scalar_events_into_the_run_directory(tmp_path):
    with TensorBoard(tmp_path) as board:
        assert board.scalars(10, {"loss": 0.5, "grad_norm": 2, "split": "train"}, prefix="train") == [
            "train/loss", "train/grad_norm"]
        assert board.scalars(20, {"loss": 0.25, "mse": 0.25, "final": True}, prefix="eval") == [
            "eval/loss", "eval/mse"]
        board.scalars(30, {"learning_rate": 1e-3})
    assert scalars_in(tmp_path) == [
        (10, "train/loss", 0.5), (10, "train/grad_norm", 2.0),
        (20, "eval/loss", 0.25), (20, "eval/mse", 0.25),
        (30, "learning_rate", pytest.approx(1e-3))]


def test_tensorboard_purge_step_marks_a_restart(tmp_path):
    from tensorboardX.proto.event_pb2 import SessionLog

    with TensorBoard(tmp_path, purge_step=40) as board:
        board.scalars(41, {"loss": 0.1}, prefix="train")
    (path,) = tmp_path.glob("events.out.tfevents.*")
    starts = [e.step for e in read_events(path) if e.session_log.status == SessionLog.START]
    assert starts == [40]
    assert scalars_in(tmp_path) == [(41, "train/loss", pytest.approx(0.1))]


# ---- progress -----------------------------------------------------------------------

class FakeClock:
    """A clock advancing 0.1 s per step the test reports."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_plain(steps, *, total=2000, initial=0, every=500, enabled=True, stop_at=None):
    stream, clock = io.StringIO(), FakeClock()
    with Progress(total, initial, "adding", enabled, every, bar=False, stream=stream,
                  clock=clock) as progress:
        for step in range(initial + 1, (stop_at or total) + 1):
            clock.now += 0.1
            progress.update(1, {"loss": 1.0 / step})
    return stream.getvalue()


def test_plain_progress_writes_one_line_every_n_steps():
    out = run_plain(2000)
    assert "\r" not in out
    assert out.splitlines() == [
        "adding: step 500/2000  loss 0.002  10.0 steps/s",
        "adding: step 1000/2000  loss 0.001  10.0 steps/s",
        "adding: step 1500/2000  loss 0.0006667  10.0 steps/s",
        "adding: step 2000/2000  loss 0.0005  10.0 steps/s",
    ]


def test_plain_progress_after_resume_at_the_end_and_on_early_exit():
    assert run_plain(None, total=1300, initial=900, every=500).splitlines() == [
        "adding: step 1000/1300  loss 0.001  10.0 steps/s",
        "adding: step 1300/1300  loss 0.0007692  10.0 steps/s",  # the total, not a multiple
    ]
    assert run_plain(None, stop_at=730).splitlines() == [
        "adding: step 500/2000  loss 0.002  10.0 steps/s",
        "adding: step 730/2000  loss 0.00137  10.0 steps/s",  # where it stopped
    ]


def test_disabled_progress_writes_nothing():
    assert run_plain(None, enabled=False) == ""
    stream = io.StringIO()
    with Progress(10, bar=True, enabled=False, stream=stream) as progress:
        progress.update(10, {"loss": 0.5})
    assert stream.getvalue() == ""


def test_bar_progress_uses_tqdm_with_the_postfix():
    stream = io.StringIO()
    with Progress(2000, 1000, "adding", bar=True, stream=stream) as progress:
        progress.update(1, {"loss": 0.0123})
        progress.update(999)
    out = stream.getvalue()
    assert "\r" in out and "adding" in out and "2000/2000" in out and "loss=0.0123" in out


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_mode_follows_the_stream():
    assert Progress(10, stream=io.StringIO(), enabled=False).bar is False
    assert Progress(10, stream=Terminal(), enabled=False).bar is True
    with pytest.raises(ValueError, match="`every` must be positive, got 0"):
        Progress(10, every=0)


def test_progress_line_without_desc_or_rate():
    assert progress_line("", 3, 9, {"acc": 1, "tag": "x"}, None) == "step 3/9  acc 1  tag x"
