"""What the README and comments say about the tree and the command line stays true."""

from __future__ import annotations

import re
import subprocess

import typer

from support.paths import REPO
from tracer.cli import app

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def table_first_column(text: str) -> list[str]:
    return [row.split("|")[1].strip() for row in text.splitlines() if row.startswith("| `")]


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def test_every_path_in_the_layout_table_exists():
    named = [path for cell in table_first_column(section("Layout")) for path in re.findall(r"`([^`]+)`", cell)]
    assert len(named) >= 20
    missing = [path for path in named if not (REPO / path).exists()]
    assert missing == []


def test_the_layout_table_names_every_module_and_package_of_tracer():
    layout = section("Layout")
    entries = {
        p.name
        for p in (REPO / "tracer").iterdir()
        if p.name not in ("__init__.py", "__main__.py", "__pycache__") and (p.suffix == ".py" or p.is_dir())
    }
    assert entries and not [
        name
        for name in sorted(entries)
        if f"`tracer/{name}{'/' if (REPO / 'tracer' / name).is_dir() else ''}`" not in layout
    ]


def test_the_layout_table_names_every_top_level_folder():
    folders = {path.split("/")[0] for path in tracked_files() if "/" in path and not path.startswith(".")}
    layout = section("Layout")
    assert folders and [folder for folder in sorted(folders) if f"`{folder}/" not in layout] == []


def test_every_test_file_a_file_names_exists():
    named = set()
    for path in tracked_files():
        if (REPO / path).suffix in (".py", ".md", ".sh", ".c", ".yaml", ".toml", "") and (REPO / path).is_file():
            named |= set(re.findall(r"\btests/(?:\w+/)*test_\w+\.py", (REPO / path).read_text(errors="replace")))
    assert named  # the README, fixtures/README.md and comments name several
    assert [name for name in sorted(named) if not (REPO / name).exists()] == []


def commands() -> dict[str, object]:
    found = {}

    def walk(path: str, command) -> None:
        for name, child in (getattr(command, "commands", None) or {}).items():
            found[f"{path} {name}"] = child
            walk(f"{path} {name}", child)

    walk("tracer", typer.main.get_command(app))
    return found


def test_the_command_table_names_every_command_with_options_that_exist():
    table = section("The command line")
    known = commands()
    rows = [row for row in table.splitlines() if row.startswith("| `tracer ")]
    command_of = {row: re.match(r"\| `(tracer(?: [a-z][a-z0-9-]*)+)", row)[1] for row in rows}
    named = set(command_of.values())
    for group in (
        "tracer pss",
        "tracer k8s",
        "tracer network",
    ):  # `tracer pss check|level`, `tracer k8s namespace|admission-config`
        named |= {path for path in known if path.startswith(group + " ") and path.split()[2] in table}
    leaves = {path for path, command in known.items() if not getattr(command, "commands", None)}
    assert leaves <= named | {" ".join(n.split()[:2]) for n in named}, leaves - named
    for row, path in command_of.items():
        options = {
            opt
            for path_, command in known.items()
            if path_.startswith(path)
            for param in command.params
            if not getattr(param, "hidden", False)
            for opt in [*param.opts, *getattr(param, "secondary_opts", [])]
        }
        assert options, path
        assert [opt for opt in re.findall(r"(--[a-z][a-z-]+)", row) if opt not in options] == [], row


def test_the_readme_states_every_exit_status():
    table = section("The command line")
    assert [row.split("|")[1].strip() for row in table.splitlines() if re.match(r"\| \d \|", row)] == [
        "0",
        "1",
        "2",
        "3",
    ]
