"""Tasks: the adding generator, losses with weights and lengths, and from_arrays."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.tasks import Batch, adding_batch, adding_task, from_arrays, get_task, losses

KEY = jax.random.key(0)


def classification_arrays(n=50, steps=7, features=3, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, steps, features)).astype(np.float32)
    return xs, (xs[:, :, 0].sum(axis=1) > 0).astype(np.int32)


# ---- the adding problem ---------------------------------------------------------------

def test_adding_targets_are_the_sum_of_the_two_marked_values():
    xs, targets = adding_batch(KEY, 32, 20)
    values, marker = np.asarray(xs[..., 0]), np.asarray(xs[..., 1])
    assert np.all(marker.sum(axis=1) == 2)
    assert np.all(marker[:, :10].sum(axis=1) == 1) and np.all(marker[:, 10:].sum(axis=1) == 1)
    np.testing.assert_allclose(targets, (values * marker).sum(axis=1), rtol=1e-6)


def test_adding_task_batches_are_pure_functions_of_key_and_step():
    task = adding_task(length=10)
    a, b = task.train_batch(KEY, 3, 8), task.train_batch(KEY, 3, 8)
    c = task.train_batch(KEY, 4, 8)
    np.testing.assert_array_equal(a.xs, b.xs)
    assert not np.array_equal(a.xs, c.xs)
    evals = task.eval_batches(KEY, 8, 3)
    assert len(evals) == 3 and not np.array_equal(evals[0].xs, evals[1].xs)


def test_unknown_task_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="unknown option 'lenght' of task 'adding'; its options: length"):
        get_task("adding", lenght=3)
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks: adding"):
        get_task("nope")


# ---- losses ---------------------------------------------------------------------------

def test_losses_ignore_rows_of_weight_zero_and_steps_past_the_length():
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    batch = Batch(jnp.zeros((3, 4, 1)), jnp.array([0, 0, 1]), None, jnp.array([1.0, 1.0, 0.0]))
    expected = -np.mean([jax.nn.log_softmax(logits[0])[0], jax.nn.log_softmax(logits[1])[0]])
    np.testing.assert_allclose(losses.cross_entropy(logits, batch), expected, rtol=1e-6)
    assert float(losses.accuracy(logits, batch)) == 0.5
    per_step = jnp.arange(12.0).reshape(2, 3, 2)  # (B, T, O=2)
    targets = jnp.zeros((2, 3, 2))
    batch = Batch(jnp.zeros((2, 3, 1)), targets, jnp.array([3, 1]), None)
    squares = np.square(np.arange(12.0).reshape(2, 3, 2)).mean(axis=-1)
    np.testing.assert_allclose(losses.mse(per_step, batch), (squares[0].sum() + squares[1, 0]) / 4)


# ---- from_arrays ----------------------------------------------------------------------

@pytest.mark.parametrize("test_fraction", [1.0, 0.0, float("nan")])
def test_a_test_fraction_outside_0_1_is_refused_by_each_task_that_holds_one_out(test_fraction):
    from lstm_jax.tasks.text import char_task

    xs, labels = classification_arrays(n=10)
    message = f"^`test_fraction` must be in \\(0, 1\\), got {test_fraction}$"
    with pytest.raises(ValueError, match=message):
        from_arrays(xs, labels, test_fraction=test_fraction)
    with pytest.raises(ValueError, match=message):  # checked before the text is read
        char_task(path="never_read.txt", seq_len=4, test_fraction=test_fraction)


def test_from_arrays_carves_off_a_deterministic_disjoint_test_split():
    xs, labels = classification_arrays(n=50)
    task = from_arrays(xs, labels, test_fraction=0.2)
    again = from_arrays(xs, labels, test_fraction=0.2)
    test_rows = np.concatenate([b.xs for b in task.eval_batches(KEY, 16, 1)])[:10]
    np.testing.assert_array_equal(test_rows, np.concatenate(
        [b.xs for b in again.eval_batches(jax.random.key(9), 16, 1)])[:10])
    seen = np.concatenate([task.train_batch(KEY, s, 10).xs for s in range(4)])
    assert task.train_size == 40 and len(seen) == 40
    train_keys = {row.tobytes() for row in seen}
    assert len(train_keys) == 40 and not train_keys & {row.tobytes() for row in test_rows}
    assert train_keys | {row.tobytes() for row in test_rows} == {row.tobytes() for row in xs}


def test_from_arrays_epochs_visit_every_example_once_in_a_fresh_order():
    xs, labels = classification_arrays(n=30)
    task = from_arrays(xs, labels, test=(xs[:5], labels[:5]))
    first = np.concatenate([task.train_batch(KEY, s, 10).xs for s in range(3)])
    second = np.concatenate([task.train_batch(KEY, s, 10).xs for s in range(3, 6)])
    assert sorted(r.tobytes() for r in first) == sorted(r.tobytes() for r in xs)
    assert sorted(r.tobytes() for r in second) == sorted(r.tobytes() for r in xs)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(task.train_batch(KEY, 4, 10).xs, task.train_batch(KEY, 4, 10).xs)
    assert not np.array_equal(task.train_batch(KEY, 0, 10).xs,
                              task.train_batch(jax.random.key(1), 0, 10).xs)


def test_from_arrays_eval_set_is_the_whole_test_split_with_padding_weighted_out():
    xs, labels = classification_arrays(n=40)
    task = from_arrays(xs, labels, test=(xs[:13], labels[:13]))
    batches = task.eval_batches(KEY, 8, 1)
    assert [b.xs.shape[0] for b in batches] == [8, 8]
    np.testing.assert_array_equal(np.concatenate([b.weights for b in batches]), [1] * 13 + [0] * 3)
    # accuracy over the padded batches equals accuracy over the 13 examples
    predict = lambda b: jax.nn.one_hot((b.xs[:, 0, 0] > 0).astype(np.int32), 2)
    total = sum(float(losses.accuracy(predict(b), b)) * float(b.weights.sum()) for b in batches)
    exact = np.mean((xs[:13, 0, 0] > 0) == labels[:13])
    np.testing.assert_allclose(total / 13, exact)
    assert task.baselines == {"accuracy": float(np.mean(labels[:13] == np.argmax(np.bincount(labels))))}


def test_from_arrays_tokens_regression_per_step_and_lengths():
    tokens = np.random.default_rng(0).integers(0, 7, size=(20, 5))
    lengths = np.random.default_rng(1).integers(1, 6, size=20)
    task = from_arrays(tokens, tokens.astype(np.float32), seq_lengths=lengths, loss="mse",
                       readout="every", test_fraction=0.25)
    assert task.tokens and task.input_size == 7 and task.output_size == 1 and task.readout == "every"
    batch = task.train_batch(KEY, 0, 5)
    assert batch.xs.dtype == np.int64 or batch.xs.dtype == np.int32
    assert batch.seq_lengths.shape == (5,) and set(task.baselines) == {"mse"}


def test_from_arrays_baselines_say_what_they_measure():
    # 10 balanced test labels, the training split's commonest class rare among them: the
    # majority baseline scores below a uniform guess, and the note says why
    labels = np.array([3] * 12 + [0, 1, 2] * 3 + list(range(10)), np.int32)
    xs = np.zeros((len(labels), 4, 2), np.float32)
    task = from_arrays(xs[:-10], labels[:-10], test=(xs[-10:], labels[-10:]))
    assert task.baselines == {"accuracy": 0.1}
    assert task.baseline_note == ("always predicting class 3, the commonest in the training "
                                  "split; a uniform guess scores 1/10 = 0.1")
    regression = from_arrays(xs, labels.astype(np.float32), loss="mse")
    assert regression.baseline_note == "always predicting the mean of the training targets"
    assert adding_task(10).baseline_note == "always predicting 1.0, the mean of the target"


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros((4, 3)), np.zeros(4, np.int32)), {}, ValueError, "`xs` must be (N, T, I) floats or (N, T) int token ids, got shape (4, 3)"),
    ((np.zeros((4, 3, 2)), np.zeros(5, np.int32)), {}, ValueError, "`targets` must have 4 rows like `xs`, got shape (5,)"),
    ((np.zeros((4, 3, 2)), np.zeros(4)), {}, ValueError, "`targets` must be int class labels (N,) for loss='cross_entropy', got float64 (4,)"),
    ((np.full((4, 3, 2), np.nan), np.zeros(4, np.int32)), {}, ValueError, "`xs` holds NaN or infinite values"),
    ((np.zeros((4, 3, 2)), np.zeros(4, np.int32)), {"seq_lengths": [1, 2, 3, 4]}, ValueError, "`seq_lengths` must be in [1, 3], got values in [1, 4]"),
    ((np.zeros((4, 3, 2)), np.zeros(4, np.int32)), {"readout": "mean"}, ValueError, "`readout` must be 'last' or 'every', got 'mean'"),
    ((np.zeros((4, 3, 2)), np.zeros(4, np.int32)), {"loss": "hinge"}, ValueError, "`loss` must be one of ['cross_entropy', 'mse'], got 'hinge'"),
    ((np.zeros((4, 3, 2)), np.zeros(4, np.int32)), {"test": (np.zeros((2, 3, 5)), np.zeros(2, np.int32))}, ValueError, "test xs of shape (2, 3, 5) do not match `xs` of shape (4, 3, 2)"),
    ((np.zeros((4, 3, 2)), np.zeros(4, np.int32)), {"test": "nope"}, TypeError, "`test` must be (xs, targets) or (xs, targets, seq_lengths)"),
])
def test_from_arrays_rejects_bad_input_naming_the_argument(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        from_arrays(*args, **kwargs)


def test_from_arrays_batch_larger_than_the_training_set_is_an_error():
    xs, labels = classification_arrays(n=10)
    task = from_arrays(xs, labels, test_fraction=0.5)
    with pytest.raises(ValueError, match="`batch_size` 8 is larger than the 5 training examples"):
        task.train_batch(KEY, 0, 8)
