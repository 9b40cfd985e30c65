"""Runs trained at once (``lt.train(..., seeds=...)``, ``lstm-jax train --seeds``): each
equals its run alone, and an interrupt, a resume or a damaged checkpoint is handled as
for one run."""

import dataclasses
import json
import os
import shlex
import shutil

import numpy as np
import pytest

from lstm_jax import cli
from lstm_jax import train as lt
from test_checkpoint import damage
from test_cli import run_cli
from test_train import TINY, assert_trees_equal, interrupt_at, read_metrics
from tests.helpers import SMALL

SEEDS = [3, 1]  # not sorted: each run keeps its own place


def numbers(record: dict) -> dict:
    return {k: v for k, v in record.items() if isinstance(v, float)}


def assert_close_runs(a: dict, b: dict, tolerance: float = 1e-5) -> None:
    """Two results of ``lt.train``: final metrics and parameters equal within ``tolerance``."""
    assert numbers(a["metrics"]) == pytest.approx(numbers(b["metrics"]), abs=tolerance)
    for x, y in zip(jax_leaves(a["state"].params), jax_leaves(b["state"].params), strict=True):
        np.testing.assert_allclose(x, y, atol=tolerance, rtol=tolerance)


def jax_leaves(tree):
    import jax

    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def test_seeds_trained_at_once_equal_their_runs_alone(tmp_path):
    together = lt.train(TINY, tmp_path / "together", seeds=SEEDS, progress=False)
    assert [r["run_dir"] for r in together] == lt.seed_dirs(tmp_path / "together", SEEDS)
    alone = lt.train(dataclasses.replace(TINY, seed=1), tmp_path / "alone", progress=False)
    assert_close_runs(together[1], alone)
    losses = [[r["loss"] for r in read_metrics(path) if r["split"] == "train"]
              for path in (together[1]["run_dir"], tmp_path / "alone")]
    np.testing.assert_allclose(*losses, rtol=1e-5)
    recorded = [json.loads((r["run_dir"] / "config.json").read_text())["config"]["seed"]
                for r in together]
    assert recorded == SEEDS
    assert all((r["run_dir"] / "loss.png").exists() for r in together)
    assert not np.allclose(*(jax_leaves(r["state"].params)[0] for r in together))  # two models


@pytest.mark.slow
def test_an_interrupted_group_checkpoints_every_seed_and_resumes_bit_identical(tmp_path, monkeypatch):
    config = dataclasses.replace(TINY, checkpoint_every=10, keep_checkpoints=10)
    with monkeypatch.context() as patch:
        interrupt_at(patch, "step")
        with pytest.raises(lt.Interrupted) as stopped:
            lt.train(config, tmp_path / "stopped", seeds=SEEDS, progress=False)
    assert (stopped.value.step, stopped.value.checkpoint) == (13, 13)
    for path in lt.seed_dirs(tmp_path / "stopped", SEEDS):
        assert sorted(int(p.name) for p in (path / "checkpoints").iterdir()) == [10, 13]
    # one seed's latest checkpoint damaged: the group continues from step 10, which all have
    shutil.copytree(tmp_path / "stopped", tmp_path / "damaged")
    damage(tmp_path / "damaged" / "seed1" / "checkpoints" / "13", "truncate")
    # one seed without checkpoints: the runs cannot continue together
    shutil.copytree(tmp_path / "stopped", tmp_path / "mixed")
    shutil.rmtree(tmp_path / "mixed" / "seed3" / "checkpoints")
    with pytest.raises(lt.ConfigError, match=r"seed3 has no checkpoint while .*seed1 has; these "
                                             r"runs cannot continue together: continue each "
                                             r"alone with resume=True$"):
        lt.train(config, tmp_path / "mixed", seeds=SEEDS, resume=True, progress=False)

    straight = lt.train(config, tmp_path / "straight", seeds=SEEDS, progress=False)
    for name in ("stopped", "damaged"):
        resumed = lt.train(config, tmp_path / name, seeds=SEEDS, resume=True, progress=False)
        for a, b in zip(resumed, straight, strict=True):
            assert_trees_equal(a["state"], b["state"])
            assert a["metrics"] == b["metrics"]
    evals = [r for r in read_metrics(tmp_path / "damaged" / "seed3") if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [20, 40]


def test_bad_seeds_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    for flags, message in [
        (["--seed", "2", "--seeds", "0,1"], "give --seed S for one run or --seeds S,S,... for "
                                            "several, not both"),
        (["--seeds", "0,x"], "argument --seeds: seeds are integers, as 0,1,2 or 0 1 2: got '0,x'"),
        (["--seeds", "0,1", "1"], "--seeds must be distinct, got 0, 1, 1"),
        (["--seeds", "0,1", "--seeds", "1"], "--seeds must be distinct, got 0, 1, 1"),
        (["--seeds", "-1,x"], "argument --seeds: seeds are integers, as 0,1,2 or 0 1 2: got '-1,x'"),
    ]:
        assert cli.main(["train", "adding", "--out", out, *flags]) == 2
        assert capsys.readouterr().err.startswith(f"lstm-jax: error: {message}")
    assert not (tmp_path / "run").exists()
    with pytest.raises(lt.ConfigError, match=r"^`seeds` must be one or more ints, got 3$"):
        lt.train(TINY, tmp_path / "run", seeds=3)
    with pytest.raises(lt.ConfigError, match=r"^`seeds` must be distinct, got 1, 1$"):
        lt.train(TINY, tmp_path / "run", seeds=[1, 1])


def test_seeds_on_the_command_line_may_be_negative_and_given_in_several_words():
    """``--seeds -1,2`` is two seeds, not an unknown option -1,2 that left --seeds without
    a value (as the --resume command printed for such seeds was); a repeated ``--seeds``
    adds its seeds, where it used to drop the earlier ones."""
    parser = cli._parser()
    for words, seeds in [(["-1,2"], [-1, 2]), (["-1", "-2"], [-1, -2]), (["0,-3"], [0, -3]),
                         (["0,1", "--seeds", "2"], [0, 1, 2])]:
        for command in ("train", "reproduce"):
            args, rest = parser.parse_known_args([command, "adding", "--seeds", *words,
                                                  "--steps", "3"])
            assert (cli._seeds(args.seeds), rest) == (seeds, ["--steps", "3"])


@pytest.mark.slow
def test_train_seeds_from_the_command_line_stops_and_continues(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    flags = ["train", "adding", "--seeds", "0", "1", "--steps", "20", *SMALL]
    with monkeypatch.context() as patch:
        interrupt_at(patch, "step")
        assert cli.main([*flags, "--out", str(out), "--no-progress"]) == 130
    continue_with = shlex.join(["lstm-jax", "train", "adding", "--seeds", "0,1", "--out",
                                str(out), "--resume"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGINT) at step 13; each seed's last checkpoint is step 13, in "
        f"{out / 'seedS' / 'checkpoints'}. Continue with: {continue_with}")
    assert cli.main(["train", "adding", "--out", str(out), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"lstm-jax: error: {out} holds a run per seed (seed0, seed1); continue them with "
        f"--seeds 0,1 --resume\n")
    assert cli.main([*shlex.split(continue_with)[1:], "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "seed0: final evaluation:" in printed and "seed1: final evaluation:" in printed
    assert [lt.load(out / f"seed{s}").step for s in (0, 1)] == [20, 20]


@pytest.mark.slow
def test_train_seeds_in_its_own_process_splits_the_runs_over_the_cores(tmp_path):
    """The command gives jax a CPU device per core before jax starts; each seed's run is
    that of the seed alone within 1e-5."""
    out = tmp_path / "runs"
    done = run_cli("train", "adding", "--seeds", "0,1", "--steps", "20", *SMALL, "--out", str(out),
                   "--no-progress", env={"JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr
    devices = json.loads((out / "seed1" / "config.json").read_text())["devices"]
    assert len(devices) == min(2, len(os.sched_getaffinity(0)))
    alone = run_cli("train", "adding", "--seed", "1", "--steps", "20", *SMALL, "--out",
                    str(tmp_path / "alone"), "--no-progress")
    assert alone.returncode == 0, alone.stderr
    finals = [numbers(read_metrics(path)[-1]) for path in (out / "seed1", tmp_path / "alone")]
    assert finals[0] == pytest.approx(finals[1], abs=1e-5)
    # its checkpoints, saved from a CPU device per core, load here, with one device
    assert lt.evaluate(out / "seed1")["metrics"] == pytest.approx(finals[0], abs=1e-5)
    assert lt.load(out / "seed0").step == 20
