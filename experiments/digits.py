"""scikit-learn's 8×8 digits read pixel by pixel, 64 steps: the fast smoke experiment."""

from lstm_jax.train import Config

DESCRIPTION = "digits read pixel by pixel (64 steps): an LSTM classifies the 8x8 images"

SEEDS = (0, 1)
VARIANTS = {"lstm": {}}
REFERENCE = {
    "source": "none published (scikit-learn's load_digits)",
    "published": "the issue's bar: > 90% test accuracy",
    "metric": "accuracy",
    "value": 0.90,
    "variant": "lstm",
}


def get_config() -> Config:
    return Config(
        task="digits",  # 1,797 images from scikit-learn; a fifth held out, the same every seed
        cell="lstm",
        hidden_size=64,
        batch_size=64,
        steps=1500,  # about 67 epochs of the 1,438 training images
        learning_rate=3e-3,
        warmup_steps=100,
        eval_every=250,
        checkpoint_every=500,
    )
