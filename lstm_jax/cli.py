"""The ``lstm-jax`` command. Intentionally kept short: the work lives in the package."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lstm-jax", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train an LSTM on the adding problem (minutes on CPU)")
    demo.add_argument("--steps", type=int, default=2000)
    demo.add_argument("--length", type=int, default=100)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.version:
        from lstm_jax import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        from lstm_jax import demo as demo_module

        demo_module.run(steps=args.steps, length=args.length, seed=args.seed)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
