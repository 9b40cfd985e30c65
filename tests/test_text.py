"""The chars task (a text file or the KJV Bible), Trained.sample and `lstm-jax sample`."""

import math
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import lstm_jax as lj
from lstm_jax import cli
from lstm_jax import train as lt
from lstm_jax.tasks import MissingData, get_task, text
from lstm_jax.train import loop

TEXT = "the cat sat on the mat. " * 40 + "a dog ran far away from the mat and the cat. " * 5


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_vocabulary_is_the_sorted_characters_and_encode_decode_round_trip(text_file):
    task = get_task("chars", path=str(text_file), seq_len=16)
    vocab = sorted(set(TEXT))
    assert (task.input_size, task.output_size, task.readout, task.tokens) == (len(vocab), len(vocab), "every", True)
    ids = task.encode("the mat")
    np.testing.assert_array_equal(ids, [vocab.index(c) for c in "the mat"])
    assert task.decode(ids) == "the mat"
    with pytest.raises(ValueError, match=r"^characters 'QZ' are not in the text's vocabulary$"):
        task.encode("ZQ cat")


def test_train_windows_come_from_the_training_part_with_next_character_targets(text_file):
    task = get_task("chars", path=str(text_file), seq_len=16)
    split = len(TEXT) - round(len(TEXT) * 0.05)
    key = jax.random.key(0)
    batch = task.train_batch(key, 7, 5)
    assert batch.xs.shape == batch.targets.shape == (5, 16)
    np.testing.assert_array_equal(batch.xs[:, 1:], batch.targets[:, :-1])
    for row, target in zip(batch.xs, batch.targets):
        window = task.decode(row) + task.decode(target)[-1]
        assert window in TEXT[:split]
    np.testing.assert_array_equal(task.train_batch(key, 7, 5).xs, batch.xs)  # pure in (key, step)
    assert np.any(task.train_batch(key, 8, 5).xs != batch.xs)


def test_held_out_tail_is_read_as_consecutive_windows_padded_with_weight_zero(text_file):
    task = get_task("chars", path=str(text_file), seq_len=8)
    tail = TEXT[len(TEXT) - round(len(TEXT) * 0.05):]
    batches = task.eval_batches(jax.random.key(0), 4, 1)
    windows = (len(tail) - 1) // 8
    weights = np.concatenate([b.weights for b in batches])
    assert weights.sum() == windows and len(weights) == 4 * math.ceil(windows / 4)
    read = "".join(task.decode(b.xs[r]) for b in batches for r in range(4) if b.weights[r])
    assert read == tail[:8 * windows]
    last = batches[-1]
    assert task.decode(last.targets[0])[:-1] == task.decode(last.xs[0])[1:]


def test_bpc_is_cross_entropy_in_bits_and_the_baseline_the_unigram_entropy(text_file):
    task = get_task("chars", path=str(text_file), seq_len=16)
    train = TEXT[:len(TEXT) - round(len(TEXT) * 0.05)]
    freq = np.array([train.count(c) for c in sorted(set(TEXT))], float) / len(train)
    freq = freq[freq > 0]
    assert task.baselines["bpc"] == pytest.approx(-(freq * np.log2(freq)).sum())
    batch = task.eval_batches(jax.random.key(0), 4, 1)[0]
    logits = np.random.default_rng(0).normal(size=(*batch.xs.shape, task.output_size))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = -np.take_along_axis(log_p, np.asarray(batch.targets)[..., None], -1)[..., 0]
    assert 0 < batch.weights.sum() < 4  # a padded row, which must count for nothing
    nats = picked[batch.weights > 0].mean()
    metrics = task.metrics(logits.astype(np.float32), batch)
    assert float(metrics["bpc"]) == pytest.approx(nats / math.log(2), rel=1e-5)


def test_bad_paths_and_texts_shorter_than_a_window_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"^`path` '.*nope.txt' does not exist$"):
        get_task("chars", path=str(tmp_path / "nope.txt"))
    (tmp_path / "short.txt").write_text("x" * 100)
    with pytest.raises(ValueError, match=r"^the text's held-out tail has 5 characters, fewer "
                                         r"than `seq_len` \+ 1 = 17$"):
        get_task("chars", path=str(tmp_path / "short.txt"), seq_len=16)
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1") * 50)
    with pytest.raises(ValueError, match=r"is not UTF-8 text"):
        get_task("chars", path=str(tmp_path / "latin1.txt"))


def test_a_relative_path_option_is_recorded_absolute(tmp_path, monkeypatch):
    """`--task-options path=small.txt` names a file in the folder the command ran in; the
    run's config.json records it absolute, so eval, sample and --resume work from anywhere."""
    monkeypatch.chdir(tmp_path)
    base = lt.load_experiment("charlm").config()
    given = lt.config.cli(base, ["--task-options", "path=small.txt", "seq_len=32"], prog="t")
    assert given.task_options["path"] == str(tmp_path / "small.txt")
    assert given.task_options["seq_len"] == 32
    kept = lt.config.cli(base, ["--task-options", f"path={tmp_path / 'a.txt'}"], prog="t")
    assert kept.task_options["path"] == str(tmp_path / "a.txt")


def test_without_the_bible_program_or_its_cache_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(text.shutil, "which", lambda name: None)
    with pytest.raises(MissingData, match=re.escape("sudo apt-get install bible-kjv (or `make data`)")):
        get_task("chars")


@pytest.mark.skipif(shutil.which("bible") is None, reason="needs Debian's bible-kjv")
def test_the_bible_is_prose_without_verse_references_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bible = text.bible_text()
    assert bible.startswith("In the beginning God created the heaven and the earth.\nAnd the earth")
    assert bible.rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert 4_000_000 < len(bible) < 4_500_000
    assert not re.search(r"^\S*\d+:\d+ ", bible, re.MULTILINE)
    cached = tmp_path / "lstm_jax" / "bible-kjv.txt"
    assert cached.read_text(encoding="utf-8") == bible
    assert not list(cached.parent.glob("*.tmp"))
    monkeypatch.setattr(text.shutil, "which", lambda name: None)  # the cache alone suffices
    assert text.bible_text() == bible


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("chars")
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    config = lt.Config(task="chars", task_options={"path": str(root / "corpus.txt"), "seq_len": 16},
                       hidden_size=16, embed_size=8, batch_size=8, steps=30, eval_every=30,
                       checkpoint_every=30, log_every=10, learning_rate=1e-2)
    lt.train(config, root / "run", progress=False)
    return root / "run"


def test_greedy_sampling_continues_with_the_argmax_of_the_whole_model(trained_run):
    trained = lt.load(trained_run)
    prompt = "the cat"
    sampled = trained.sample(prompt, 6, temperature=0.0)
    assert isinstance(sampled, str) and len(sampled) == 6
    so_far = prompt
    for _ in range(6):  # the full model over the growing text, no carry passed around
        logits = trained.predict(trained.task.encode(so_far)[None, :])
        so_far += trained.task.decode([int(np.argmax(logits[0, -1]))])
    assert prompt + sampled == so_far


def test_sampling_is_reproducible_per_seed_and_checks_its_arguments(trained_run):
    trained = lt.load(trained_run)
    one = trained.sample("t", 40, temperature=1.0, seed=0)
    assert one == trained.sample("t", 40, temperature=1.0, seed=0)
    assert one != trained.sample("t", 40, temperature=1.0, seed=1)
    with pytest.raises(lt.ConfigError, match=r"^prompt: characters 'X' are not in"):
        trained.sample("X at", 5)
    with pytest.raises(lt.ConfigError, match=r"^the prompt must hold at least one token$"):
        trained.sample("", 5)
    with pytest.raises(lt.ConfigError, match=r"^`length` must be a positive int, got 0$"):
        trained.sample("t", 0)


def test_lstm_jax_sample_prints_the_prompt_and_its_continuation(trained_run, capsys):
    args = ["sample", str(trained_run), "--prompt", "the", "--length", "30", "--temperature", "0"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert printed == "the" + lt.load(trained_run).sample("the", 30, temperature=0.0) + "\n"
    assert cli.main(["sample", str(trained_run), "--prompt", "Qxyz"]) == 2
    assert capsys.readouterr().err == ("lstm-jax: error: prompt: characters 'Qxz' are not in the "
                                       "text's vocabulary\n")


def one_shot_sample(trained, prompt, length, temperature, seed):
    """The sample as it was drawn before it came in chunks: one program, one scan of
    ``length`` steps after the prompt is read (the reference of the chunked draw)."""
    step = trained.model.step

    @jax.jit
    def draw(params, ids, key):
        carry, _ = step(params, None, ids[:, :1])
        carry = jax.tree.map(jax.numpy.zeros_like, carry)
        carry, _ = step(params, carry, ids[:, :-1])

        def one(carry, token):
            carry, logits = step(params, carry, token[:, None])
            return carry, logits[:, 0]

        return lj.sample(one, carry, ids[:, -1], key, length=length, temperature=temperature)[0]

    ids = trained.task.encode(prompt)[None, :]
    return trained.task.decode(np.asarray(draw(trained.params, ids, jax.random.key(seed)))[0])


def test_a_sample_drawn_in_chunks_is_the_sample_drawn_at_once(trained_run, monkeypatch):
    trained = lt.load(trained_run)
    monkeypatch.setattr(loop, "SAMPLE_CHUNK", 8)
    for length, temperature, seed in ((5, 1.0, 0), (8, 1.0, 0), (9, 1.0, 0), (16, 1.0, 0),
                                      (43, 1.0, 0), (43, 0.7, 3)):  # 5: shorter than a chunk
        assert (trained.sample("the c", length, temperature=temperature, seed=seed)
                == one_shot_sample(trained, "the c", length, temperature, seed)), length
    assert loop._sampler(trained.model.step, 8, 1.0)[1]._cache_size() == 1  # compiled once
    monkeypatch.undo()
    length = 2 * loop.SAMPLE_CHUNK + 3
    assert trained.sample("the", length) == one_shot_sample(trained, "the", length, 1.0, 0)


def test_lstm_jax_sample_stopped_between_chunks_prints_nothing(trained_run, monkeypatch, capsys):
    """SIGTERM as the third chunk of a hundred is drawn: the draw stops after it, exit 143."""
    monkeypatch.setattr(loop, "SAMPLE_CHUNK", 8)
    real, starts = loop._sampler, []

    def sampler(*args):
        read, draw = real(*args)

        def signalled(params, carry, token, key, start):
            starts.append(start)
            if len(starts) == 3:
                signal.raise_signal(signal.SIGTERM)
            return draw(params, carry, token, key, start)

        return read, signalled

    monkeypatch.setattr(loop, "_sampler", sampler)
    args = ["sample", str(trained_run), "--prompt", "the", "--length", "800"]
    assert cli.main(args) == 143
    assert starts == [0, 8, 16]
    assert capsys.readouterr() == ("", stopped_by_sigterm(args))


def test_lstm_jax_sample_stopped_by_a_signal_prints_no_sample(trained_run, monkeypatch, capsys):
    """A signal as the sample begins, before the prompt is read: nothing printed, exit 143."""
    real = lt.Trained.sample
    monkeypatch.setattr(lt.Trained, "sample", lambda *a, **k: (
        signal.raise_signal(signal.SIGTERM), real(*a, **k))[1])
    args = ["sample", str(trained_run), "--prompt", "the", "--length", "30"]
    assert cli.main(args) == 143
    assert capsys.readouterr() == ("", stopped_by_sigterm(args))


def stopped_by_sigterm(args):
    """What ``lstm-jax ARGS...`` says on stderr when a SIGTERM stops it before it wrote anything."""
    return ("lstm-jax: SIGTERM received: stopping at the next safe point (SIGTERM again to stop "
            f"at once)\nlstm-jax: interrupted (SIGTERM); nothing was written. Start again with: "
            f"{shlex.join(['lstm-jax', *args])}\n")


SIGNALLED_SAMPLE = textwrap.dedent("""
    # `lstm-jax sample ARGS...` with a real Ctrl-C sent to this process as its second chunk
    # is drawn; then the chunks drawn, on stderr
    import os, signal, sys
    from lstm_jax import cli
    from lstm_jax.train import loop
    sampler, starts = loop._sampler, []
    def signalled_sampler(*args):
        read, draw = sampler(*args)
        def signalled(*args):
            starts.append(args[-1])
            if len(starts) == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return draw(*args)
        return read, signalled
    loop._sampler = signalled_sampler
    code = cli.main(sys.argv[1:])
    print(f"chunks drawn: {len(starts)} of {-(-int(sys.argv[-1]) // loop.SAMPLE_CHUNK)}",
          file=sys.stderr)
    sys.exit(code)
""")


@pytest.mark.slow
def test_lstm_jax_sample_interrupted_in_a_process_of_its_own_exits_130(trained_run):
    result = subprocess.run([sys.executable, "-c", SIGNALLED_SAMPLE, "sample", str(trained_run),
                             "--prompt", "the", "--length", "3000000"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 130, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        f"lstm-jax: interrupted (SIGINT); nothing was written. Start again with: lstm-jax sample "
        f"{trained_run} --prompt the --length 3000000",
        "chunks drawn: 2 of 733"]


@pytest.mark.parametrize("args, message", [
    (["sample", "{tmp}"], "the following arguments are required: --prompt"),
    (["sample", "{tmp}", "--prompt", "x", "--length", "ten"], "argument --length: invalid int value: 'ten'"),
    (["sample", "{tmp}/nothing", "--prompt", "x"],
     "{tmp}/nothing/config.json not found: is {tmp}/nothing a run directory?"),
])
def test_lstm_jax_sample_user_errors_are_one_line_exit_2(args, message, tmp_path, capsys):
    assert cli.main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstm-jax: error: ") and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err


def test_sampling_a_run_whose_task_has_no_text_is_a_one_line_error(finished_run, capsys):
    with pytest.raises(lt.ConfigError, match=r"^the model of 'adding' cannot be sampled: that needs "
                                             r"token inputs, a per-step readout and no bidirectional"):
        lt.load(finished_run).sample("x", 3)
    assert cli.main(["sample", str(finished_run), "--prompt", "x"]) == 2
    assert capsys.readouterr().err == (f"lstm-jax: error: {finished_run} is a run of 'adding', "
                                       f"whose task has no text to sample\n")
