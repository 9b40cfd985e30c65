"""lstm_jax.train.interrupts: a first Ctrl-C or SIGTERM is announced and acted on at the
next safe point, a second one of either kind stops at once, and the announcement names
the way to do that for the signal received."""

import io
import signal

import pytest

from lstm_jax.train import interrupts
from lstm_jax.train.report import Progress


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_first_signal_waits_for_a_safe_point_and_a_second_stops_at_once(signum, name, capsys):
    with interrupts.deferred():
        interrupts.check()  # nothing yet
        signal.raise_signal(signum)
        assert interrupts.pending() == signum
        assert capsys.readouterr().err == (f"lstm-jax: {name} received: stopping at the next safe "
                                           f"point ({name} again to stop at once)\n")
        with pytest.raises(interrupts.Interrupted) as safe:
            interrupts.check()
        assert (safe.value.signum, safe.value.exit_code) == (signum, 128 + signum)
        with pytest.raises(interrupts.StoppedAtOnce) as at_once:
            signal.raise_signal(signum)  # raised by the handler, wherever the program is
        assert at_once.value.exit_code == 128 + signum and str(at_once.value) == str(safe.value)
        assert not isinstance(at_once.value, interrupts.Interrupted)  # not a safe point
        assert capsys.readouterr().err == ""  # announced once
    assert interrupts.pending() is None  # the block's end forgets it


def test_a_sigterm_after_a_ctrl_c_stops_at_once_with_its_own_status(capsys):
    with interrupts.deferred():
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(interrupts.StoppedAtOnce) as at_once:
            signal.raise_signal(signal.SIGTERM)
    assert at_once.value.exit_code == 143


def test_the_announcement_ends_a_progress_bars_line_only_while_one_is_on_screen(capsys):
    with interrupts.deferred():
        bar = Progress(10, desc="adding", bar=True, stream=io.StringIO())  # a tqdm bar
        signal.raise_signal(signal.SIGINT)
        bar.close()
        assert capsys.readouterr().err.startswith("\nlstm-jax: Ctrl-C received: ")
    with interrupts.deferred():
        Progress(10, desc="adding", bar=False, stream=io.StringIO()).close()  # plain lines
        signal.raise_signal(signal.SIGINT)
        assert capsys.readouterr().err.startswith("lstm-jax: Ctrl-C received: ")


def test_nested_blocks_keep_the_outer_signal_even_where_sigint_is_ignored(monkeypatch):
    """A background job started by a shell ignores SIGINT: the inner block of the training
    loop then must not forget a SIGTERM the command's block has to act on."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.deferred():
            with interrupts.deferred():
                signal.raise_signal(signal.SIGTERM)
            assert interrupts.pending() == signal.SIGTERM
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # stays ignored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_in_an_indivisible_block_a_second_signal_leaves_the_first_to_end_the_command(capsys):
    with interrupts.deferred():
        with interrupts.indivisible():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)  # not at once: the block goes on
            signal.raise_signal(signal.SIGINT)
        assert interrupts.pending() == signal.SIGTERM
        assert capsys.readouterr().err.count("received") == 1
        with pytest.raises(interrupts.StoppedAtOnce):  # after the block, at once again
            signal.raise_signal(signal.SIGINT)
