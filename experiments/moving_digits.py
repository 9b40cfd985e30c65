"""Moving digits: next frames of 8×8 digits bouncing on a 16×16 canvas (Shi et al., 2015).

A small Moving MNIST made of scikit-learn's digits (``lstm_jax.tasks.moving_digits``):
read 10 frames, then predict the next 10 in one pass. Shi et al.'s claim is an ordering:
a ConvLSTM, whose state keeps the frame's layout, beats an LSTM over flattened frames
(FC-LSTM). The third row's baseline repeats the last frame read.
"""

from lstm_jax.train import Config

DESCRIPTION = "moving digits (8x8 digits bouncing on 16x16, 10 frames in, 10 out): ConvLSTM vs FC-LSTM"

SEEDS = (0, 1)
VARIANTS = {
    "conv_lstm": {"cell": "conv_lstm", "hidden_size": 16, "task_options": {"flat": False},
                  "cell_options": {"kernel_size": 5}},
    "fc_lstm": {},
}
REFERENCE = {
    "source": "Shi et al. 2015 (NeurIPS), \"Convolutional LSTM Network\", Moving MNIST table",
    "published": "on Moving MNIST (64×64, two digits) the ConvLSTM's cross-entropy is lower "
                 "than the FC-LSTM's (the ordering is what is compared here; their numbers, "
                 "not checked here, are on another dataset and scale)",
    "metric": "mse",
}


def get_config() -> Config:
    return Config(
        task="moving_digits",
        task_options={"canvas": 16, "frames_in": 10, "frames_out": 10, "flat": True},
        cell="lstm",
        hidden_size=256,  # FC-LSTM: 256 pixels in, 256 units
        batch_size=32,
        steps=1500,
        learning_rate=2e-3,
        warmup_steps=100,
        eval_every=250,
        eval_batches=8,  # 256 test sequences of the held-out digits
        checkpoint_every=500,
    )
