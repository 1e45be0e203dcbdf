"""One way into every job: a frozen config per job, named recipes, `--set KEY=VALUE`, and flags.

A job declares a `JobSpec`: its recipes (complete configs; the first is the default), the shared
flags it takes (head, Ray address, MLflow, output, shards, subjects: each defined once in `SHARED`,
mapped by the job onto one of its config keys) and its own flags, each of which sets one config
key. Every flag is therefore a shorthand for `--set KEY=VALUE` and goes through the same typed
parsing and the same checks; `--print-config` prints the resolved config as JSON and exits;
`--help` lists every config key with the recipe's value. Errors name the flag or the dotted key.

    spec = JobSpec(doc=__doc__, recipes={"default": RefineJob}, shared={"out": "out"}, flags=(...))
    job = parse_job(spec, argv)        # exits 2 with a message on bad input (argparse's convention)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sa0.config import apply_overrides


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets config key `key` (a dotted path).

    names: "--flag" (and aliases), or one positional name. nargs "+": several values, stored as a
    comma-joined tuple. switch: takes no value and sets `value` (default "true"). path: values are made
    absolute (Ray workers run elsewhere). items: a function value -> override items, for a flag that
    sets more than a single key (e.g. `--photometric 0` switching a section off)."""

    names: tuple[str, ...]
    key: str | None = None
    help: str = ""
    nargs: str | None = None
    switch: bool = False
    value: str = "true"
    path: bool = False
    required: bool = False
    metavar: str | None = None
    type: Callable | None = None
    choices: tuple[str, ...] | None = None
    items: Callable[[Any], list[str]] | None = None


# Flags several jobs share, each defined here once; a job maps the ones it takes onto its config keys.
SHARED: dict[str, Flag] = {
    "head": Flag(("--flame-dir", "--head"), metavar="DIR|ict|synthetic",
                 help="head model: ict (ICT-FaceKit, shipped), synthetic, or a FLAME directory"),
    "address": Flag(("--address",), help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)"),
    "mlflow": Flag(("--mlflow-uri",), metavar="URI",
                   help="MLflow tracking URI, or off (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"),
    "no_mlflow": Flag(("--no-mlflow",), switch=True, value="off", help="no MLflow tracking (= --mlflow-uri off)"),
    "out": Flag(("--out",), path=True, help="output"),
    "shards": Flag(("--shards",), nargs="+", path=True, metavar="DIR",
                   help="shard directories (make_shards.py / track.py output)"),
    "subjects": Flag(("--subjects",), help="a text file with one subject id per line, or ids separated by commas"),
    "avatar": Flag(("--avatar",), path=True, help="avatar.npz written by refine_batch.py"),
    "uv_resolution": Flag(("--uv-resolution",), metavar="R",
                          help="UV texel grid side (default: what the inputs were made at; a contradicting one is "
                               "refused)"),
    "steps": Flag(("--steps",), help="optimisation steps per subject"),
    "format": Flag(("--format",), help="file format"),
    "video": Flag(("--video",), path=True, help="a video file (mp4, mov, webm, ...)"),
    "serve": Flag(("--serve",), switch=True, help="serve on 127.0.0.1"),
    "port": Flag(("--port",), help="port on 127.0.0.1"),
}


@dataclass(frozen=True)
class Use:
    """How a job uses a shared flag: the config key it sets, extra names the job has always spelt
    it with (e.g. --storage for --out), and what it means in this job when that is narrower."""

    key: str
    aliases: tuple[str, ...] = ()
    help: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """What a job takes: its docstring (usage), recipes (name -> zero-argument config factory; the
    first is the default), shared flags (SHARED name -> config key, or a Use; "mlflow" brings
    --no-mlflow too), and its own flags."""

    doc: str
    recipes: Mapping[str, Callable[[], Any]]
    shared: Mapping[str, str | Use] = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()
    required: tuple[str, ...] = ()  # config keys that must be set (non-empty) by a flag or --set
    prepare: Callable[[Any], Any] | None = None  # config -> checked config (cheap, no side effects); ValueError

    def all_flags(self) -> list[Flag]:
        out = []
        for name, use in self.shared.items():
            use = Use(use) if isinstance(use, str) else use
            out.append(dataclasses.replace(SHARED[name], key=use.key, names=SHARED[name].names + use.aliases,
                                           help=use.help or SHARED[name].help))
            if name == "mlflow":
                out.append(dataclasses.replace(SHARED["no_mlflow"], key=use.key))
        return out + list(self.flags)


def _get(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def config_lines(config, prefix: str = "") -> list[str]:
    """`key = value` for every leaf field of a nested config (the --help listing)."""
    lines = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            lines += config_lines(value, f"{prefix}{f.name}.")
        else:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            lines.append(f"  {prefix}{f.name} = {shown}")
    return lines


def build_parser(spec: JobSpec, prog: str | None = None) -> argparse.ArgumentParser:
    default = next(iter(spec.recipes))
    config = spec.recipes[default]()
    epilog = (f"Every flag above sets a config key; --set KEY=VALUE sets any of them. The keys, with the "
              f"'{default}' recipe's values:\n" + "\n".join(config_lines(config)))
    parser = argparse.ArgumentParser(prog=prog, description=spec.doc, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in spec.all_flags():
        kwargs: dict[str, Any] = {"help": _flag_help(flag, config).replace("%", "%%")}  # argparse %-formats help
        if flag.switch:
            kwargs["action"] = "store_true"
        else:
            metavar = flag.metavar or (None if flag.choices else (flag.key or "value").split(".")[-1].upper())
            kwargs.update(nargs=flag.nargs, metavar=metavar, type=flag.type, choices=flag.choices)
        positional = not flag.names[0].startswith("-")
        if not positional:
            kwargs.update(dest=_dest(flag), default=None)
            if flag.required:
                kwargs["required"] = True
        elif flag.nargs is None and not flag.required:
            kwargs["nargs"] = "?"
        parser.add_argument(*flag.names, **kwargs)
    parser.add_argument("--recipe", default=default, choices=tuple(spec.recipes),
                        help=f"named complete config to start from (default {default})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_items",
                        help="set a config key by its dotted path, e.g. --set a.b=1 (repeatable; after the flags)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    return parser


def _flag_help(flag: Flag, config) -> str:
    """The flag's help, then the key it sets and the recipe's value: `... [refine.steps = 10000]`."""
    if not flag.key or flag.switch:
        return f"{flag.help} [{flag.key}]" if flag.key else flag.help
    try:
        value = _get(config, flag.key)
    except AttributeError:
        return f"{flag.help} [{flag.key}]"
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return f"{flag.help} [{flag.key} = {shown}]"


def _dest(flag: Flag) -> str:
    return "flag_" + flag.names[0].lstrip("-").replace("-", "_")


def _flag_items(flag: Flag, value) -> list[str]:
    if flag.switch:
        return [f"{flag.key}={flag.value}"] if value else []
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if flag.path:
        values = [os.path.abspath(v) for v in values]
    if flag.items is not None:
        return flag.items(values if isinstance(value, list) else values[0])
    return [f"{flag.key}={','.join(map(str, values))}"]


def resolve(spec: JobSpec, args: argparse.Namespace):
    """The recipe, then each flag given, then --set items: the job's config. ValueError names the
    flag or the key that is wrong."""
    config = spec.recipes[args.recipe]()
    for flag in spec.all_flags():
        value = getattr(args, flag.names[0] if not flag.names[0].startswith("-") else _dest(flag))
        try:
            config = apply_overrides(config, _flag_items(flag, value))
        except ValueError as exc:
            shown = " ".join(map(str, value)) if isinstance(value, list) else ("" if flag.switch else value)
            raise ValueError(f"{flag.names[0]} {shown}: {exc}".replace("  ", " ")) from None
    config = apply_overrides(config, args.set_items)
    for key in spec.required:
        if _get(config, key) in (None, "", ()):
            names = [f.names[0] for f in spec.all_flags() if f.key == key]
            raise ValueError(f"{' or '.join(names) or '--set ' + key + '=...'} is required ({key} is not set)")
    return config


def parse_job(spec: JobSpec, argv: list[str] | None = None, prog: str | None = None):
    """Parse `argv` into the job's config (then spec.prepare's checks); `--print-config` prints it and
    exits 0; bad input exits 2 with argparse's usage line and a message naming the flag or key."""
    parser = build_parser(spec, prog)
    args = parser.parse_args(argv)
    try:
        config = resolve(spec, args)
        if spec.prepare is not None:
            config = spec.prepare(config)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_config:
        print(json.dumps(dataclasses.asdict(config), indent=1, default=str))
        sys.exit(0)
    return config


def parse_commands(doc: str, commands: Mapping[str, JobSpec], argv: list[str] | None = None,
                   prog: str | None = None) -> tuple[str, Any]:
    """A job with sub-commands (`make_shards.py synthetic ...`): (command, its config)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(commands)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{doc}\ncommands: {names}; `<command> --help` lists each one's flags and config keys.")
        sys.exit(0 if argv else 2)
    if argv[0] not in commands:
        print(f"error: unknown command {argv[0]!r}; choose one of {names}", file=sys.stderr)
        sys.exit(2)
    name = argv[0]
    return name, parse_job(commands[name], argv[1:], prog=f"{prog or os.path.basename(sys.argv[0])} {name}")

