"""docs/cli.md is the generator's output for the argparse parsers as they are, so the command reference names
exactly the flags that exist; README links it and names every command."""

import argparse
import re
from pathlib import Path

from edgevae.cli import build_parser
from edgevae.cli_reference import reference

ROOT = Path(__file__).resolve().parents[2]
CLI_MD = ROOT / "docs" / "cli.md"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def parser_flags(parser: argparse.ArgumentParser) -> dict:
    """{command: set of --flags} of every subcommand (--help left out)."""
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return {name: {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
            for name, sub in commands.items()}


def reference_flags(text: str) -> dict:
    """{command: set of --flags} named in the first column of each `## edgevae COMMAND` section's table."""
    flags = {}
    for section in text.split("\n## edgevae ")[1:]:
        name, body = section.split("\n", 1)
        rows = [line for line in body.splitlines() if line.startswith("| `")]
        flags[name.strip()] = {flag for row in rows for flag in FLAG.findall(row.split("|")[1])}
    return flags


def test_docs_cli_md_is_the_generators_output():
    assert CLI_MD.read_text() == reference(), (
        "docs/cli.md drifted from the CLI: regenerate with python -m edgevae.cli_reference > docs/cli.md")


def test_the_reference_documents_every_command_with_exactly_its_flags():
    documented, actual = reference_flags(reference()), parser_flags(build_parser())
    assert sorted(documented) == sorted(actual), "commands in docs/cli.md vs the CLI"
    for command in actual:
        assert documented[command] == actual[command], (
            f"edgevae {command}: only in docs/cli.md {sorted(documented[command] - actual[command])}, "
            f"only in the CLI {sorted(actual[command] - documented[command])}")


def test_a_new_flag_changes_the_reference():
    """The drift check has teeth: a flag added to a parser shows up in the generated text."""
    parser = build_parser()
    before = reference(parser)
    parser.commands["sample"].add_argument("--brand-new-flag", help="a flag no one documented")
    after = reference(parser)
    assert before != after and "--brand-new-flag" in reference_flags(after)["sample"]


def test_readme_links_the_reference_and_names_every_command():
    readme = (ROOT / "README.md").read_text()
    assert "docs/cli.md" in readme
    missing = [name for name in parser_flags(build_parser()) if f"`{name}`" not in readme and f"edgevae {name}" not in readme]
    assert not missing, f"README does not name these commands: {missing}"
