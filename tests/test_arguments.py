"""Messages name the arguments the caller can change: flags on the command line, Python
arguments from Python (lstm_jax.train.arguments)."""

import pytest

from lstm_jax import cli
from lstm_jax import train as lt
from lstm_jax.train import arguments, rundir


@pytest.fixture
def holds_a_run(tmp_path):
    (tmp_path / rundir.RECORD).write_text("{}")
    return tmp_path


def test_python_callers_read_the_python_arguments(holds_a_run):
    with pytest.raises(lt.ConfigError) as error:
        rundir.create(holds_a_run, "adding")
    assert str(error.value) == (f"{holds_a_run} already holds a run; continue it with "
                                f"resume=True or choose another run_dir")
    (holds_a_run / rundir.RECORD).unlink()
    (holds_a_run / "notes.txt").write_text("mine")
    with pytest.raises(lt.ConfigError) as error:
        lt.train(lt.Config(), holds_a_run, progress=False)
    assert str(error.value) == (f"{holds_a_run} exists and is not an empty directory; choose "
                                f"another run_dir")


def test_a_run_directory_in_use_is_refused_before_any_run_is_prepared(holds_a_run, monkeypatch):
    """Before jax prepares (and compiles a step of) each run: 8 seeds took 7 s to say so."""
    from lstm_jax.train import loop

    def never(*args, **kwargs):
        raise AssertionError("prepared a run for a directory it then refused")

    monkeypatch.setattr(loop, "prepare", never)
    monkeypatch.setattr(loop, "prepare_group", never)
    with pytest.raises(lt.ConfigError, match="already holds a run; continue it with resume=True"):
        lt.train(lt.Config(), holds_a_run, seeds=[0, 1], progress=False)


def test_the_command_line_reads_its_flags(holds_a_run, capsys):
    with arguments.command_line():
        with pytest.raises(lt.ConfigError, match=r"continue it with --resume or choose another --out$"):
            rundir.create(holds_a_run, "adding")
    assert arguments.named("out") == "run_dir"  # the context ended
    assert cli.main(["train", "adding", "--out", str(holds_a_run)]) == 2
    assert capsys.readouterr().err == (f"lstm-jax: error: {holds_a_run} already holds a run; "
                                       f"continue it with --resume or choose another --out\n")


def test_every_wording_names_a_flag_of_the_command_and_an_argument_of_python():
    import inspect

    from lstm_jax.train import loop, reproduce

    python_names = {*inspect.signature(loop.train).parameters,
                    *inspect.signature(reproduce.reproduce).parameters, *lt.config.FIELDS}
    for name, (flag, python) in arguments.WORDINGS.items():
        assert flag == f"--{name}"
        assert python.split("=")[0].strip("`") in python_names, python
