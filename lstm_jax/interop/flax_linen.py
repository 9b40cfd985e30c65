"""Placeholder until this module is written."""


def from_flax(*args, **kwargs):
    raise NotImplementedError


def to_flax(*args, **kwargs):
    raise NotImplementedError
