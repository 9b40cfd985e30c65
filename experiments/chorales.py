"""Bach chorales, next piano-roll frame (Chung, Gulcehre, Cho & Bengio, 2014, Table 2)."""

from lstm_jax.train import Config

DESCRIPTION = "Bach chorales (music21), next quarter-note frame: NLL per frame, tanh/GRU/LSTM"

SEEDS = (0, 1, 2)
VARIANTS = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "tanh": {"cell": "simple"},
}
REFERENCE = {
    "source": "Chung, Gulcehre, Cho & Bengio (2014), Empirical Evaluation of Gated Recurrent "
              "Neural Networks on Sequence Modeling, Table 2 (JSB Chorales)",
    "published": "GRU 8.54 test NLL per frame, gated units better than tanh, GRU comparable to "
                 "LSTM; on the JSB Chorales split of Boulanger-Lewandowski et al. (2012), 88 "
                 "pitches: similar data, a different split and pitch range than ours",
    "metric": "nll",
}


def get_config() -> Config:
    return Config(
        task="chorales",  # 371 chorales, a fifth of the pieces held out, the same every seed
        cell="lstm",
        hidden_size=64,
        batch_size=16,  # pieces, padded to the longest (192 quarter-note frames)
        steps=1000,  # ~54 epochs of the 297 training pieces; 35-70 s a run on 2 CPU cores
        learning_rate=3e-3,
        warmup_steps=50,
        eval_every=250,
        checkpoint_every=250,
    )
