"""Run directories: created exclusively, with ``config.json`` recording how the run was made.

``config.json`` holds the experiment and where it came from (so ``eval`` and
``--resume`` rebuild its task and model), the config, the command lines that started
and resumed it, the library versions and the devices.
"""

from __future__ import annotations

import datetime
import json
from importlib import metadata
from pathlib import Path

from lstm_jax._files import write_atomically
from lstm_jax.train.arguments import named
from lstm_jax.train.config import Config, ConfigError, from_dict, to_dict

RECORD = "config.json"
VERSIONED = ("lstm_jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def create(out: str | Path | None, name: str, runs: Path = Path("runs")) -> Path:
    """Make the run directory: ``out`` itself, or a new ``runs/NAME-<time>[-N]``.

    ``out`` may exist only as an empty directory. Two runs started in the same second
    get two directories: each is created with ``exist_ok=False``.
    """
    if out is not None:
        check_new(out)
        return make(Path(out), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        candidate = runs / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            return make(candidate, exist_ok=False)
        except FileExistsError:
            continue
    raise ConfigError(f"cannot find a free run directory name under {runs}")


def check_new(out: str | Path) -> None:
    """Refuse ``out`` for a new run unless it is absent or an empty directory: what
    ``create`` checks, which a caller can check first, before it prepares the runs."""
    out = Path(out)
    if (out / RECORD).exists():
        raise ConfigError(f"{out} already holds a run; continue it with {named('resume')} or "
                          f"choose another {named('out')}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory; choose another "
                          f"{named('out')}")


def make(path: Path, exist_ok: bool = True) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok:
            raise
        raise ConfigError(f"cannot create run directory {path}: a file is in the way") from None
    except OSError as error:
        raise ConfigError(f"cannot create run directory {path}: {error.strerror}") from None
    return path


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_record(run_dir: Path, record: dict) -> None:
    """Write ``config.json`` atomically (a killed write leaves the old file)."""
    write_atomically(Path(run_dir) / RECORD, json.dumps(record, indent=2) + "\n")


def new_record(experiment_name: str, source: str, config: Config, devices: list,
               command: str | None) -> dict:
    """A new run's ``config.json``; ``command`` is the lstm-jax command line, None from Python."""
    return {
        "experiment": experiment_name,
        "source": source,  # lstm_jax.experiments.NAME, a file's path, or "python"
        "config": to_dict(config),
        "command": command,
        "resumed": [],
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": versions(),
        "devices": [str(device) for device in devices],
    }


def read_record(run_dir: Path) -> tuple[dict, Config]:
    """(the record, its Config) from ``run_dir/config.json``; one-line ConfigErrors."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        held = sorted(p.parent.name for p in Path(run_dir).glob(f"*/{RECORD}"))
        if held:  # the parent of runs trained at once (--seeds, --sweep)
            raise ConfigError(f"{run_dir} holds runs trained at once ({', '.join(held)}), not "
                              f"one run: give one of them, e.g. {Path(run_dir) / held[0]}")
        raise ConfigError(f"{path} not found: is {run_dir} a run directory?")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); restore it or start a new run") from None
    if not isinstance(record, dict) or not {"experiment", "source", "config"} <= set(record):
        raise ConfigError(f"{path} is not a run record (it needs experiment, source and config)")
    return record, from_dict(record["config"], str(path))
