"""Adding problem, T = 100 (Hochreiter & Schmidhuber, 1997, experiment 4)."""

from lstm_jax.train import Config

DESCRIPTION = "adding problem, T=100: one LSTM layer regresses the sum of two marked values"


def get_config() -> Config:
    return Config(
        task="adding",
        task_options={"length": 100},  # T; the baseline MSE of predicting 1.0 is 0.167
        cell="lstm",
        hidden_size=64,
        batch_size=64,
        steps=2000,  # about a minute on 2 CPU cores
        learning_rate=3e-3,
        warmup_steps=100,
        eval_every=500,
        eval_batches=16,  # 1,024 test sequences
        checkpoint_every=500,
    )
