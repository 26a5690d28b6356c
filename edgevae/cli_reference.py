"""docs/cli.md, written from the argparse parsers: every command's usage line and arguments as Markdown.

    python -m edgevae.cli_reference > docs/cli.md

tests/e2e/test_readme_cli.py fails when the committed docs/cli.md differs from this output, so the reference
cannot drift from the flags that exist. The usage lines are built here from the parsers' actions rather
than by argparse's help formatter, whose line wrapping follows the terminal's width. Stdlib only.
"""

import argparse
import sys

from .cli import build_parser

HEADER = """# Command reference

Generated from the argparse parsers by `python -m edgevae.cli_reference > docs/cli.md`; a test fails when
this file and the parsers differ. `edgevae COMMAND --help` prints the same. Bad input ends every command
with one line on stderr and exit status 2 (`EDGEVAE_DEBUG=1` shows the traceback); `edgevae --version`
prints the version.
"""
USAGE_WIDTH = 100


def _arguments(parser: argparse.ArgumentParser) -> list:
    """Every argument of parser but -h/--help, in declaration order."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _metavar(action: argparse.Action) -> str:
    """The argument's placeholder as argparse writes it (METAVAR, {a,b} for choices, [X ...] for nargs)."""
    default = action.dest if not action.option_strings else action.dest.upper()
    return argparse.HelpFormatter(prog="")._format_args(action, default) if action.nargs != 0 else ""


def _invocation(action: argparse.Action) -> str:
    """`--flag METAVAR` for an option (its longest name), `METAVAR` for a positional."""
    if not action.option_strings:
        return _metavar(action)
    return " ".join(part for part in (max(action.option_strings, key=len), _metavar(action)) if part)


def _usage(name: str, parser: argparse.ArgumentParser) -> str:
    """One usage line: options in declaration order (optional ones bracketed, a mutually exclusive group
    as [a | b]), then positionals, as argparse orders them."""
    groups = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    parts, done = [], set()
    for action in _arguments(parser):
        if not action.option_strings:
            continue
        group = groups.get(id(action))
        if group is not None:
            if id(group) not in done:
                done.add(id(group))
                inner = " | ".join(_invocation(a) for a in group._group_actions)
                parts.append(f"({inner})" if group.required else f"[{inner}]")
        else:
            parts.append(_invocation(action) if action.required else f"[{_invocation(action)}]")
    parts += [_invocation(a) for a in _arguments(parser) if not a.option_strings]
    return _wrap([f"edgevae {name}", *parts])


def _wrap(parts: list, width: int = USAGE_WIDTH) -> str:
    """parts joined by spaces, lines broken between parts (never inside one) before width, continuations
    indented under the first argument."""
    indent = " " * (len(parts[0]) + 1)
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 1 + len(part) > width and lines[-1] != parts[0]:
            lines.append(indent + part)
        else:
            lines[-1] += " " + part
    return "\n".join(lines)


def _help(action: argparse.Action) -> str:
    """The help text with argparse's %(...)s expanded (and %% unescaped), as `--help` prints it."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    params = dict(vars(action), prog="")
    if action.choices is not None:
        params["choices"] = ", ".join(str(c) for c in action.choices)
    return action.help % params


def _cell(text: str) -> str:
    """text inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default is None or action.default == argparse.SUPPRESS:
        return ""
    return f"`{_cell(action.default)}`"


def reference(parser: argparse.ArgumentParser | None = None) -> str:
    """docs/cli.md's text for parser (default: the edgevae command's)."""
    parser = parser or build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summary = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = [HEADER, "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#edgevae-{name}) | {_cell(summary.get(name, ''))} |" for name in commands.choices]
    for name, sub in commands.choices.items():
        lines += ["", f"## edgevae {name}", ""]
        if summary.get(name):
            lines += [summary[name][0].upper() + summary[name][1:] + ".", ""]
        lines += ["```", _usage(name, sub), "```", ""]
        lines += ["| argument | default | meaning |", "|---|---|---|"]
        for action in _arguments(sub):
            meaning = "; ".join(text for text in ("required" if action.required else "", _help(action)) if text)
            lines.append(f"| `{_cell(_invocation(action))}` | {_default(action)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
