"""Copying memory, delay T = 100 (Arjovsky, Shah & Bengio, 2016, section 4.1).

Recall 10 symbols of 8 after 100 blanks. A model that remembers nothing scores
10·ln 8 / 120 = 0.1733 nats per step. In the paper's Figure 1 the LSTM (128 units)
beats that baseline only at T = 100, and the uRNN solves every length. Tallec &
Ollivier (2018) solve it with the LSTM itself by initialising its gate biases for
long dependencies ("chrono"), the third model here.
"""

from lstm_jax.train import Config

DESCRIPTION = "copying memory, T=100: LSTM and GRU recall 10 symbols of 8 after 100 blanks"

SEEDS = (0,)  # one: a 20,000-step run took 72-76 minutes here (forget_bias has 3 seeds)
VARIANTS = {
    "lstm": {},
    "gru": {"cell": "gru"},
    # chrono initialisation for dependencies up to the sequence's 120 steps; run at the
    # first budget of this experiment (8,000 steps), as 20,000 more did not fit here
    "lstm-chrono": {"cell_options": {"chrono_init": 120},
                    "steps": 8000, "eval_every": 500, "checkpoint_every": 1000},
}
REFERENCE = {
    "source": "Arjovsky, Shah & Bengio 2016, Fig. 1 (T=100); Tallec & Ollivier 2018, section 5",
    "published": "memoryless baseline 0.1733 nats; \"the LSTM is able to beat the baseline "
                 "only for 100 time steps\" (Fig. 1 caption; 128 units, RMSProp); Tallec & "
                 "Ollivier 2018 (copy at T = 500 and 2000): the chrono-initialised LSTM solves "
                 "it where the standard LSTM stays at the baseline",
    "metric": "loss",
    "note": "All three beat the memoryless baseline at T = 100, as the paper's LSTM does. "
            "After 20,000 steps of batch 64 the GRU's loss is 71% below it (recall of the 10 "
            "symbols 0.71, chance 0.125) and the LSTM's 54% below (recall 0.51); at this "
            "experiment's first budget of 8,000 steps they were 44% and 33% below, their "
            "curves still falling as the learning rate decayed to 0. Neither solves the task "
            "(a loss near 0). Chrono initialisation, run at the 8,000-step budget, stayed "
            "closest to the baseline (14% below): Tallec & Ollivier train far longer, with "
            "RMSProp. One seed each: a 20,000-step run took 72-76 minutes here, the 2 cores "
            "shared with other work.",
}


def get_config() -> Config:
    return Config(
        task="copy",
        task_options={"delay": 100},  # T; the memoryless baseline is 10·ln 8 / 120 = 0.1733 nats
        cell="lstm",
        hidden_size=128,  # the paper's LSTM has 128 units
        embed_size=16,  # the 10 tokens (blank, 8 symbols, delimiter) embedded in 16 dimensions
        batch_size=64,
        steps=20000,  # at 8,000 every curve was still falling when the learning rate reached 0
        learning_rate=2e-3,
        warmup_steps=200,
        eval_every=1000,
        eval_batches=8,  # 512 test sequences
        checkpoint_every=2000,
    )
