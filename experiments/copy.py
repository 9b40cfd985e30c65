"""Copying memory, delay T = 100 (Arjovsky, Shah & Bengio, 2016, section 4.1).

Recall 10 symbols of 8 after 100 blanks. A model that remembers nothing scores
10·ln 8 / 120 = 0.1733 nats per step. In the paper's Figure 1 the LSTM (128 units)
beats that baseline only at T = 100, and the uRNN solves every length.
"""

from lstm_jax.train import Config

DESCRIPTION = "copying memory, T=100: LSTM and GRU recall 10 symbols of 8 after 100 blanks"

SEEDS = (0, 1)
VARIANTS = {"lstm": {}, "gru": {"cell": "gru"}}
REFERENCE = {
    "source": "Arjovsky, Shah & Bengio 2016, Fig. 1 (T=100)",
    "published": "memoryless baseline 0.1733 nats; \"the LSTM is able to beat the baseline "
                 "only for 100 time steps\" (Fig. 1 caption; 128 units, RMSProp)",
    "metric": "loss",
}


def get_config() -> Config:
    return Config(
        task="copy",
        task_options={"delay": 100},  # T; the memoryless baseline is 10·ln 8 / 120 = 0.1733 nats
        cell="lstm",
        hidden_size=128,  # the paper's LSTM has 128 units
        embed_size=16,  # the 10 tokens (blank, 8 symbols, delimiter) embedded in 16 dimensions
        batch_size=64,
        steps=8000,
        learning_rate=2e-3,
        warmup_steps=200,
        eval_every=500,
        eval_batches=8,  # 512 test sequences
        checkpoint_every=1000,
    )
