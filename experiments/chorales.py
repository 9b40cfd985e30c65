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
    "note": "Our frames are quarter notes over the 51 pitches music21's 371 chorales use, split "
            "by piece here, against the 88-key rolls of Boulanger-Lewandowski et al.'s 382 JSB "
            "chorales: the numbers are of the same kind, not the same test set. After 1,000 "
            "steps (H=64) all three models sit within 0.12 nats of each other (GRU best, the "
            "LSTM last), about 1 nat above the paper's GRU: the small model and short "
            "training leave the gated units no room to show the advantage the paper reports.",
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
