"""`genreg --help` and every subcommand's --help: grouped, one line and an example each, and every default
they document equal to the default the code uses (config keys, option defaults)."""

from __future__ import annotations

import argparse
import inspect
import re

import pytest

from genreg.cli import common
from genreg.cli.main import GROUPS, build_parser, main
from genreg.config import config_fields, toml_value
from genreg.hpo.config import HPOConfig
from genreg.hybrid.config import HybridConfig
from genreg.strategies.config import Config

#: The config class whose keys a subcommand lists (and whose defaults its options fall back to).
CONFIGS = {"evolve": Config, "resume": Config, "hybrid": HybridConfig, "hpo": HPOConfig}
#: Options whose help names a default that is a description, not a value (checked for wording only).
DESCRIBED = {"out", "data_dir", "children", "snapshots", "task", "workers"}  # defaults said in words


def subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


COMMANDS = sorted(subparsers())


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_top_help_is_grouped_short_and_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert len(text.splitlines()) <= 40
    for title, names in GROUPS:
        assert f"{title}:" in text
    listed = {name for _, names in GROUPS for name in names}
    assert set(COMMANDS) <= listed
    for name in COMMANDS:
        assert re.search(rf"^  {name} +{re.escape(common.SUMMARIES[name])}$", text, re.M), name
    assert "example:" in text and "--resume" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_a_one_line_description_and_an_example(command, capsys):
    text = help_text(command, capsys)
    summary = common.SUMMARIES[command]
    assert summary[0].upper() + summary[1:] + "." in text
    example = text.split("example:\n", 1)[1].splitlines()[0]
    assert example.startswith(f"  genreg {command}"), example
    assert "--resume" not in text  # the old spelling is hidden: genreg resume RUN_DIR


@pytest.mark.parametrize("command", COMMANDS)
def test_shared_options_read_the_same_everywhere(command):
    parser = subparsers()[command]
    shared = {"--generations": common.GENERATIONS_HELP, "--data-dir": common.DATA_DIR_HELP, "--seed": common.SEED_HELP}
    for flag, action in parser._option_string_actions.items():
        if flag in shared and action.help != argparse.SUPPRESS:
            assert action.help == shared[flag], (command, flag)
        if flag == "--out" and command in ("evolve", "hybrid", "hpo"):
            assert action.metavar == "RUN_DIR" and "run directory" in action.help


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_documented_config_defaults_are_the_configs(command, capsys):
    cls = CONFIGS[command]
    text = help_text(command, capsys)
    keys = text.split("config keys", 1)[1]
    documented = dict(re.findall(r"^  (\w+) = (.*)$", keys, re.M))
    fields = config_fields(cls)
    assert set(documented) == set(fields)
    for name, value in documented.items():
        assert value == toml_value(fields[name].default), name


def _documented_defaults(parser):
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS):
            continue
        rendered = action.help % {**vars(action), "prog": parser.prog}  # as argparse renders %(default)s
        m = re.search(r"\(default:? ([^)]*)\)", rendered)
        if m:
            yield action, m.group(1)


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_option_defaults_are_the_ones_used(command):
    parser = subparsers()[command]
    cls = CONFIGS.get(command)
    for action, text in _documented_defaults(parser):
        shown = text.split(",")[0].strip() if action.dest != "task" else text
        if action.dest == "task" and cls is not None:
            assert shown == getattr(cls(), "task"), command
        elif action.dest in DESCRIBED:
            assert shown, (command, action.dest)
        elif action.default not in (None, argparse.SUPPRESS):
            assert shown == str(action.default), (command, action.dest, shown)
        else:  # an option whose value falls back to the config's key of the same name
            default = getattr(cls(), action.dest)
            assert shown == ({True: "on", False: "off"}[default] if isinstance(default, bool) else str(default)), \
                (command, action.dest)


def test_attack_option_defaults_are_run_attacks_defaults():
    from genreg.hybrid.attacks import run_attacks

    signature = inspect.signature(run_attacks).parameters
    parser = subparsers()["attack"]
    for dest, param in (("epsilon", "epsilon"), ("method", "method"), ("steps", "steps"), ("images", "n_images"),
                        ("children", "n_children")):
        assert parser.get_default(dest) == signature[param].default, dest


def test_attack_help_names_the_files_it_writes(capsys):
    text = " ".join(help_text("attack", capsys).split())
    assert "attack_<method>_eps<epsilon>.json" in text and "attack_<method>_eps<epsilon>.png" in text
    assert "attack.json" not in text.replace("attack_<method>_eps<epsilon>.json", "")
