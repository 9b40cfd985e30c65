"""scikit-learn's 8×8 digits read pixel by pixel, 64 steps: the fast smoke experiment."""

from lstm_jax.train import Config

DESCRIPTION = "digits read pixel by pixel (64 steps): an LSTM classifies the 8x8 images"


def get_config() -> Config:
    return Config(
        task="digits",  # 1,797 images from scikit-learn; a fifth held out, the same every seed
        cell="lstm",
        hidden_size=64,
        batch_size=64,
        steps=1500,  # about 67 epochs of the 1,438 training images
        learning_rate=3e-3,
        warmup_steps=100,
        eval_every=500,
        checkpoint_every=500,
    )
