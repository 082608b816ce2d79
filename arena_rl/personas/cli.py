"""``python -m arena_rl personas validate|population|study ...``: check a persona file, turn it
into a population preset, or run a study with its personas."""

from __future__ import annotations

import argparse
import sys

import yaml

from arena_rl.personas.spec import PersonaFileError, load_personas, resolve_persona_file
from arena_rl.personas.twin import population_from_personas, population_preset, preset_name
from arena_rl.scenarios.specs import SpecError

PROG = "python -m arena_rl personas"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check a persona file, turn it into a population preset, or run a study.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate", help="check a persona file; print every problem at once"
    )
    population = commands.add_parser(
        "population",
        help="print the population preset whose segments are the file's personas (YAML)",
    )
    for command in (validate, population):
        command.add_argument("file", metavar="FILE", help="a persona file (JSON) or its name")
        command.add_argument(
            "--base", default="default", help="population preset the twins refer to"
        )
    population.add_argument("--n-users", type=int, default=None, help="users over all arms")
    population.add_argument(
        "--name", default=None, help="the preset's name (default: personas_<FILE's stem>)"
    )
    commands.add_parser("study", help="run a persona study (see `study --help`)", add_help=False)
    return parser


def main(argv: list[str]) -> int:
    """Run one command; 0 on success, 1 when the file (or preset) has problems."""
    if argv and argv[0] == "study":  # its own parser owns its arguments
        from arena_rl.personas.study_cli import main as study

        return study(argv[1:])
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return int(exc.code or 0)
    try:
        personas = load_personas(args.file, base=args.base)
    except (PersonaFileError, SpecError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "validate":
        print(f"{args.file}: {len(personas)} personas, valid")
        return 0
    name = args.name or preset_name(resolve_persona_file(args.file))
    preset = population_preset(personas, args.base, args.n_users, name)
    try:
        population_from_personas(personas, args.base, args.n_users, name)  # checks the whole
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"# population of the personas in {args.file} (base preset: {args.base});")
    print(f"# save as conf/population/{name}.yaml and run with population={name}")
    print(yaml.safe_dump(preset, sort_keys=False, allow_unicode=True), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
