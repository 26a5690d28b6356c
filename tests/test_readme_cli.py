"""README's "## Commands" block and the argparse parsers name exactly the same flags, command by command."""

import re
from pathlib import Path

from edgevae.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def readme_flags() -> dict:
    """{command: set of --flags} from the README's Commands block (indented lines continue a command)."""
    text = README.read_text()
    block = text.split("## Commands", 1)[1].split("```", 2)[1]
    flags, command = {}, None
    for line in block.splitlines():
        match = re.match(r"edgevae (\w[\w-]*)", line.strip())
        if match and not line.startswith(" "):
            command = match.group(1)
            flags.setdefault(command, set())
        if command:
            flags[command] |= set(FLAG.findall(line))
    return flags


def parser_flags() -> dict:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return {name: {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
            for name, sub in commands.items()}


def test_every_command_is_documented_with_exactly_its_flags():
    documented, actual = readme_flags(), parser_flags()
    assert sorted(documented) == sorted(actual), "commands in README vs the CLI"
    for command in actual:
        assert documented[command] == actual[command], (
            f"edgevae {command}: only in README {sorted(documented[command] - actual[command])}, "
            f"only in the CLI {sorted(actual[command] - documented[command])}")
