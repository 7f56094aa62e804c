"""Help that reads like a man page, the same for every command.

Typer's plain help shows a parameter's Python type (`<str>`, `<list[Path]>`, `{TRACE}`) and
cuts each command's summary in the command list at about 45 characters. Here every
parameter shows its metavar (`TRACE...`, `DIR`, `FILE`), a choice shows its values
(`[text|json]`), a flag shows nothing, and the command list shows the whole first sentence
of each command's help. Docstrings use click's `\\b` paragraphs to keep examples verbatim.
"""

from __future__ import annotations

import re
from enum import Enum

import typer
from typer.core import TyperCommand, TyperGroup

HELP_OPTION_NAMES = ["-h", "--help"]


def choices_of(param) -> list[str]:
    """The values a choice parameter takes (typer Enum or click Choice), else []."""
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None) or getattr(getattr(param, "type", None), "choices", None) or ()
    return [choice.value if isinstance(choice, Enum) else str(choice) for choice in choices]


def is_flag(param) -> bool:
    return bool(getattr(param, "is_flag", False) or getattr(param, "count", False))


def metavar_of(param) -> str:
    """TRACE..., DIR, [text|json]: what stands for the value in help and usage."""
    if param.metavar:
        return param.metavar
    choices = choices_of(param)
    if choices:
        return f"[{'|'.join(choices)}]"
    name = (param.name or "value").upper()
    return f"{name}..." if param.nargs != 1 else name


def option_names(param) -> str:
    """`-f, --format [text|json]`, `--probe / --no-probe`: short names first."""

    def spelled(opts) -> str:
        names = ", ".join(sorted(opts, key=lambda opt: (opt.startswith("--"), opt)))
        return names if is_flag(param) else f"{names} {metavar_of(param)}"

    rows = [spelled(param.opts)]
    if param.secondary_opts:
        rows.append(spelled(param.secondary_opts))
    return " / ".join(rows)


def usage_piece(argument) -> str:
    """An argument in the usage line: TRACE..., [PATH]..., or a metavar that says it all."""
    name = metavar_of(argument)
    if name.startswith("["):
        return name
    if argument.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name if argument.required else f"[{name}]"


def first_sentence(text: str | None) -> str:
    """The first sentence of the first paragraph, whole: the summary in a command list."""
    paragraph = re.split(r"\n\s*\n", (text or "").strip(), maxsplit=1)[0]
    words = " ".join(paragraph.replace("\b", "").split())
    found = re.search(r"^.*?[.!?](?=\s|$)", words)
    return found.group(0) if found else words


def format_parameters(command, ctx, formatter) -> None:
    """The Arguments and Options sections, each row `NAME  help [default: ...]`."""
    arguments, options = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            arguments.append((metavar_of(param), record[1]))
        else:
            options.append((option_names(param), record[1]))
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


def split_examples(help_text: str | None) -> tuple[str | None, str | None]:
    """(help, the "Examples:" section), so that examples print after the options, as in a man page."""
    if not help_text:
        return help_text, None
    parts = re.split(r"^\s*Examples:\s*$", help_text, maxsplit=1, flags=re.MULTILINE)
    if len(parts) == 1:
        return help_text, None
    return parts[0].rstrip(), "Examples:\n\n" + parts[1].strip("\n")


class TracerCommand(TyperCommand):
    """A command whose help names values by metavar, whose summary is a whole sentence and
    whose examples follow the options."""

    def __init__(self, *args, **settings):
        super().__init__(*args, **settings)
        if self.epilog is None:
            self.help, self.epilog = split_examples(self.help)

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [usage_piece(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]

    def format_options(self, ctx, formatter) -> None:
        format_parameters(self, ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or first_sentence(self.help)


class TracerGroup(TyperGroup):
    """A command group listing its commands with whole-sentence summaries."""

    def format_options(self, ctx, formatter) -> None:
        format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or first_sentence(self.help)


class TracerTyper(typer.Typer):
    """typer.Typer with this project's help: plain text, man-page metavars, -h and --help."""

    def __init__(self, **settings):
        settings.setdefault("no_args_is_help", True)
        settings.setdefault("add_completion", False)
        super().__init__(
            cls=TracerGroup,
            rich_markup_mode=None,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": HELP_OPTION_NAMES},
            **settings,
        )

    def command(self, name: str | None = None, *, cls=None, **settings):
        return super().command(name, cls=cls or TracerCommand, **settings)
