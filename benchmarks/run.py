"""Run the benchmark suite (``lstm-jax bench``) and regenerate benchmarks/RESULTS.md.

    python benchmarks/run.py [--reps 10] [--quick] [--parallel | --loop | --many] [--out benchmarks] [--render]
"""

import argparse
import sys
from pathlib import Path

import render  # benchmarks/render.py, beside this file

from lstm_jax import bench
from lstm_jax.train import interrupts
from lstm_jax.train.config import ConfigError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_arguments(parser, default_out=Path(__file__).resolve().parent)
    parser.add_argument("--render", action="store_true",
                        help="only regenerate RESULTS.md from the folder's results.jsonl")
    args = parser.parse_args(argv)
    if not args.render:
        with interrupts.deferred():  # Ctrl-C/SIGTERM: stop between repetitions
            try:
                code = bench.run(args, command="python benchmarks/run.py")
            except ConfigError as error:
                parser.error(str(error))
            late = interrupts.pending()  # after the last repetition: every section is written
        if code:  # interrupted: the sections measured are written, RESULTS.md is not
            return code
    print(f"wrote {render.write(args.out)}")
    return 0 if args.render or late is None else 128 + late


if __name__ == "__main__":
    sys.exit(main())
