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
    # 8 channels, 3x3 kernels: 0.33 s per training step here (16 channels with 5x5
    # kernels and batch 32 took 5.6 s), against 0.023 s for the FC-LSTM
    "conv_lstm": {"cell": "conv_lstm", "hidden_size": 8, "task_options": {"flat": False},
                  "cell_options": {"kernel_size": 3}},
    "fc_lstm": {},
}
REFERENCE = {
    "source": "Shi et al. 2015 (NeurIPS), \"Convolutional LSTM Network\", Table 1 (Moving MNIST)",
    "published": "cross-entropy per test sequence (64×64 frames, two digits, 10 in, 10 out): "
                 "FC-LSTM-2048-2048 4832.49 (142.7M parameters) against ConvLSTM "
                 "(5×5)-5×5-256 3887.94 (13.5M) and the best, three layers "
                 "(5×5)-5×5-128-5×5-64-5×5-64, 3670.85 (7.6M): the ConvLSTM's loss is 0.76× "
                 "the FC-LSTM's. Ours is another dataset, scale and loss (MSE), so the "
                 "ordering is what is compared",
    "metric": "mse",
    "note": "Here the ordering is reversed: the FC-LSTM's MSE is about 0.55x the ConvLSTM's "
            "(0.0163 vs 0.0298, 2 seeds each, both far below the copy-last baseline 0.097). "
            "The likely reason is size, not the cell: to fit 1,500 steps on 2 CPU cores the "
            "ConvLSTM is one layer of 8 channels with 3x3 kernels, 2,633 parameters, while "
            "the FC-LSTM has 591,104 (256 units over 256 pixels), and a 16x16 canvas holding "
            "one digit leaves flattening little to lose. Shi et al.'s ConvLSTMs are stacks "
            "of 64-256 channels with 5x5 kernels on 64x64 frames with two digits. Both curves "
            "had flattened by step 1,500 (the figure), so more steps alone would not close it; "
            "the predicted frames show the ConvLSTM blurring the digit into a moving blob.",
}


def get_config() -> Config:
    return Config(
        task="moving_digits",
        task_options={"canvas": 16, "frames_in": 10, "frames_out": 10, "flat": True},
        cell="lstm",
        hidden_size=256,  # FC-LSTM: 256 pixels in, 256 units
        batch_size=16,
        steps=1500,
        learning_rate=2e-3,
        warmup_steps=100,
        eval_every=250,
        eval_batches=16,  # 256 test sequences of the held-out digits
        checkpoint_every=500,
    )


def figure(run_dirs: dict, path, example: int = 0):
    """True vs predicted frames of one test sequence, by each variant's run in
    ``run_dirs`` (variant -> run directory), written whole to ``path`` (``save_png``):
    ``lstm-jax reproduce`` draws it as ``moving_digits_figure.png`` beside the learning
    curves."""
    import numpy as np

    from lstm_jax import train as lt
    from lstm_jax.train.report import save_png
    from lstm_jax.viz import DPI, plot_frames

    rows = {}
    for name, run_dir in run_dirs.items():
        trained = lt.load(run_dir)
        frames_in = trained.config.task_options["frames_in"]
        keys = lt.run_keys(trained.config.seed)
        batch = trained.task.eval_batches(keys.eval, trained.config.batch_size, 1)[0]
        predicted = np.asarray(trained.model.apply(trained.params, batch.xs))[example]
        side = int(round(np.sqrt(predicted[0].size)))
        if not rows:
            seed = trained.config.seed
            true = np.asarray(batch.targets)[example].reshape(-1, side, side)
            rows["true"] = true[frames_in:]
            rows["copy last"] = np.repeat(true[frames_in - 1:frames_in], len(true) - frames_in, 0)
        rows[name] = predicted.reshape(-1, side, side)[frames_in:]
    fig = plot_frames(rows, title=f"moving_digits: the {len(rows['true'])} frames after the "
                                  f"{frames_in} read (a test digit; the runs of seed {seed})")
    return save_png(fig, path, dpi=DPI)
