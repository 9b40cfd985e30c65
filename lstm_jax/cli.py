"""The ``lstm-jax`` command: train, evaluate and list experiments.

Intentionally kept short: the work lives in ``lstm_jax.train``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path


def _train(args) -> int:
    from lstm_jax import train as lt
    from lstm_jax.train import ConfigError

    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out DIR, the run directory to continue")
        if args.set or args.steps is not None or args.seed is not None:
            raise ConfigError("--resume continues DIR with its own config.json; drop --set/--steps/--seed")
        config_path = Path(args.out) / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found: nothing to resume in {args.out}")
        experiment, config = lt.config.from_json(config_path.read_text())
        if experiment != args.experiment:
            raise ConfigError(f"{args.out} is a run of {experiment!r}, not {args.experiment!r}")
    else:
        experiment = args.experiment
        overrides = list(args.set)
        overrides += [f"steps={args.steps}"] if args.steps is not None else []
        overrides += [f"seed={args.seed}"] if args.seed is not None else []
        config = lt.apply_overrides(lt.load_experiment(experiment), overrides)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out) if args.out else Path("runs") / f"{experiment}-{stamp}"
    print(f"run directory: {run_dir}", flush=True)
    result = lt.train(config, run_dir, experiment=experiment, resume=args.resume,
                      progress=not args.no_progress)
    _print_metrics("final evaluation", result["metrics"], result["baselines"])
    for name in ("metrics.jsonl", "loss.png", "checkpoints"):
        print(f"{name + ':':15} {run_dir / name}")
    return 0


def _eval(args) -> int:
    from lstm_jax import train as lt

    result = lt.evaluate(Path(args.run_dir))
    _print_metrics(f"{result['experiment']} at step {result['step']}", result["metrics"],
                   result["baselines"])
    return 0


def _list(args) -> int:
    from lstm_jax import train as lt

    for name, description in lt.list_experiments().items():
        print(f"{name:20} {description}")
    return 0


def _print_metrics(title: str, metrics: dict, baselines: dict) -> None:
    print(f"{title}:")
    shown = {k: v for k, v in metrics.items() if k not in ("split", "step", "final")}
    if len(shown) > 1:
        shown.pop("loss", None)  # the task's own metrics say it better
    for name, value in shown.items():
        baseline = f"   (baseline {baselines[name]:.4g})" if name in baselines else ""
        print(f"  {name:10} {value:.4g}{baseline}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lstm-jax", description="Train LSTM/GRU experiments.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an experiment (see `lstm-jax list`)")
    train.add_argument("experiment")
    train.add_argument("--steps", type=int, help="override the config's steps")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, parsed as a Python literal (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out DIR")
    train.add_argument("--out", help="the run directory (default runs/EXPERIMENT-TIME)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)
    evaluate = commands.add_parser("eval", help="evaluate a run's latest checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.set_defaults(run=_eval)
    commands.add_parser("list", help="list the experiments").set_defaults(run=_list)
    commands.add_parser("bench", add_help=False,
                        help="benchmark against flax and PyTorch (`lstm-jax bench --help`)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from lstm_jax import bench

        return bench.main(argv[1:])
    args = parser.parse_args(argv)
    from lstm_jax.train import CheckpointError, ConfigError, TrainingDiverged

    try:
        return args.run(args)
    except (ConfigError, FileNotFoundError, FileExistsError) as error:
        print(f"lstm-jax: error: {error}", file=sys.stderr)
        return 2
    except (CheckpointError, TrainingDiverged) as error:
        print(f"lstm-jax: {error}", file=sys.stderr)
        return 1


def _version() -> str:
    from lstm_jax import __version__

    return f"lstm-jax {__version__}"


if __name__ == "__main__":
    sys.exit(main())
