"""The adding problem at T = 1,000: IndRNN vs LSTM vs tanh RNN (Li et al., 2018).

The task of ``experiments/adding.py`` (regress the sum of two marked values; predicting
1.0 scores the baseline MSE 0.167) at sequences ten times longer, in the paper's setup:
128 units, batch 50, Adam at 2e-4 for the ReLU IndRNN and 2e-3 for the tanh models, no
gradient clipping. The IndRNN is two layers, each unit's recurrent weight |u| kept at
most 2^(1/T) so that a gradient through T steps grows at most 2-fold, and initialised
as the reference TensorFlow cell's addition example (``get_model``). Plain
backpropagation through all 1,000 steps (no truncation, no remat): the fused backward
pass runs every cell here.
"""

from lstm_jax.train import Config

T = 1000

DESCRIPTION = "adding problem at T=1000: IndRNN (ReLU, |u| <= 2^(1/T), 2 layers) vs LSTM vs tanh RNN"

SEEDS = (0, 1)
VARIANTS = {
    # the paper's bound on |u| and learning rate for ReLU models; two layers, as the paper stacks IndRNNs
    "indrnn": {"cell": "indrnn", "num_layers": 2, "learning_rate": 2e-4,
               "cell_options": {"recurrent_max_abs": 2 ** (1 / T)}},
    "lstm": {},
    "tanh": {"cell": "simple"},
}
REFERENCE = {
    "source": "Li et al. 2018 (CVPR), \"Independently Recurrent Neural Network (IndRNN)\", "
              "section 4.1, adding-problem figure",
    "published": "baseline MSE 0.167 (predict 1); setup as the text gives it: RNN, LSTM and "
                 "IRNN one layer, IndRNN two, 128 units each, |u| in (0, 2^(1/T)), Adam at 2e-3 "
                 "(tanh models) and 2e-4 (ReLU models); the abstract: IndRNN processes "
                 "\"very long sequences (over 5000 time steps)\"; the figure's curves (which "
                 "model converges at which T) were not checked here",
    "metric": "mse",
}


def get_config() -> Config:
    return Config(
        task="adding",
        task_options={"length": T},
        cell="lstm",
        hidden_size=128,
        batch_size=50,
        steps=3000,
        learning_rate=2e-3,
        warmup_steps=0,
        grad_clip=0.0,  # the paper clips nothing
        eval_every=250,
        eval_batches=16,  # 800 test sequences
        checkpoint_every=500,
    )


def get_model(config: Config, task):
    """The IndRNN stack initialised as batzner/indrnn's ``examples/addition_rnn.py``:
    input weights N(0, 0.001²), zero biases, the first layers' u uniform on
    [-2^(1/T), 2^(1/T)] and the last layer's u all 1, so that it starts as an
    integrator of what the layers below pass on. Other cells: the default model."""
    if config.cell != "indrnn":
        return None
    import jax

    import lstm_jax as lj
    from lstm_jax import train as lt

    def layer(recurrent_init):
        cell = lj.indrnn(config.hidden_size, recurrent_init=recurrent_init,
                         kernel_init=jax.nn.initializers.normal(1e-3), **config.cell_options)
        return lj.rnn(cell, **config.rnn_options)

    spread = lj.initializers.uniform(config.cell_options["recurrent_max_abs"])
    layers = [layer(spread) for _ in range(config.num_layers - 1)]
    return lt.build_model(config, task, lj.stack(layers + [layer(lj.initializers.constant(1.0))],
                                                 dropout=config.dropout))
