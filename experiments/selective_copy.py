"""Selective copying (Gu & Dao, 2023), scaled to a CPU: minGRU and minLSTM by depth.

16 data symbols (of 16) stand at random positions among noise in the first 64 steps;
then 16 markers ask for them in order. Feng et al. (2024) run it with sequences of
4,096 steps; ours are 80 steps long, so that every variant fits the time of a row.
"""

from lstm_jax.train import Config

DESCRIPTION = ("selective copying (16 symbols among 64 steps of noise): minGRU/minLSTM with 1-3 "
               "layers vs GRU")

SEEDS = (0, 1)
VARIANTS = {
    **{f"min_gru-{n}L": {"cell": "min_gru", "num_layers": n} for n in (1, 2, 3)},
    **{f"min_lstm-{n}L": {"cell": "min_lstm", "num_layers": n} for n in (1, 2, 3)},
    "gru": {"cell": "gru"},
}
REFERENCE = {
    "source": "Feng et al. 2024, \"Were RNNs All We Needed?\", selective-copying table",
    "published": "the paper's claim: one layer of minGRU or minLSTM fails at selective copying "
                 "and accuracy rises with depth to near 100% at 3 layers (its gates depend on "
                 "the input alone, so depth is what lets the state select by content); the "
                 "table's numbers were not checked here",
    "metric": "accuracy",
}


def get_config() -> Config:
    return Config(
        task="selective_copy",
        task_options={"length": 64, "tokens": 16, "symbols": 16},
        cell="min_gru",
        hidden_size=64,
        embed_size=16,
        batch_size=64,
        steps=2000,
        learning_rate=3e-3,
        warmup_steps=100,
        eval_every=250,
        eval_batches=8,  # 512 test sequences, 8,192 symbols to recall
        checkpoint_every=500,
    )
