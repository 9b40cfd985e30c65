"""Placeholder until this module is written."""


def from_torch(*args, **kwargs):
    raise NotImplementedError


def to_torch(*args, **kwargs):
    raise NotImplementedError


def carry_from_torch(*args, **kwargs):
    raise NotImplementedError


def carry_to_torch(*args, **kwargs):
    raise NotImplementedError
