"""The experiments shipped with lstm_jax: one ``get_config()`` file each.

Installed as the package ``lstm_jax.experiments`` (see pyproject.toml), so
``lstm-jax list`` and ``lstm-jax train NAME`` find them from any directory.
"""
