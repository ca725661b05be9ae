"""Option names across the whole CLI: one meaning per short option, one spelling per idea
(rie_cli/cli/common.py SHORT_OPTIONS / HIDDEN_ALIASES, the table in docs/architecture.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from rie_cli.cli import app
from rie_cli.cli.common import HIDDEN_ALIASES, SHORT_OPTIONS

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands():
    """(name, click command) of every rie command, sub-commands included."""
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        for sub, cmd in getattr(command, "commands", {name: command}).items():
            yield (name if sub == name else f"{name} {sub}"), cmd


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_each_short_option_means_one_thing_everywhere():
    seen: dict[str, set[str]] = {}
    for name, cmd in _commands():
        for param in _options(cmd):
            shorts = [o for o in param.opts if re.fullmatch(r"-[a-zA-Z]", o)]
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            for short in shorts:
                assert short in SHORT_OPTIONS, f"rie {name}: {short} is not in common.SHORT_OPTIONS"
                assert set(longs) & set(SHORT_OPTIONS[short]), (
                    f"rie {name}: {short} is {longs}, but means {SHORT_OPTIONS[short]} everywhere")
                seen.setdefault(short, set()).update(longs)
            # A long name that has a short form has it in every command.
            for long in longs:
                wanted = [s for s, names in SHORT_OPTIONS.items() if long in names]
                assert set(wanted) <= set(shorts), f"rie {name}: {long} lacks its short form {wanted}"
    assert set(seen) == set(SHORT_OPTIONS), f"unused short options in the table: {set(SHORT_OPTIONS) - set(seen)}"


def test_no_command_declares_an_old_spelling():
    for name, cmd in _commands():
        declared = {o for p in cmd.params for o in p.opts + p.secondary_opts}
        assert not declared & set(HIDDEN_ALIASES), f"rie {name} declares {declared & set(HIDDEN_ALIASES)}"


def test_every_command_with_flip_tta_has_tta_and_no_tta():
    for name, cmd in _commands():
        tta = [p for p in _options(cmd) if p.name == "tta"]
        uses_tta = any("--no-tta" in p.opts + p.secondary_opts for p in _options(cmd))
        if tta or uses_tta:
            assert tta and tta[0].opts == ["--tta"] and tta[0].secondary_opts == ["--no-tta"], name


@pytest.mark.parametrize("args", [
    ["train", "--stage", "1", "--subjects-train", "S1", "--subjects-test", "S9", "-d", "missing.h5", "-o", "run"],
    ["render", "-c", "missing.pt", "-d", "missing.h5", "-k", "gt", "-s", "S9", "-a", "Walking", "--output", "walk.gif"],
])
def test_old_spellings_still_work(args, tmp_path, monkeypatch):
    """An old spelling parses (the error is about the missing file, exit 1), it is not a usage error."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "missing" in result.stderr and "No such option" not in result.output


def test_old_spellings_are_hidden_from_help():
    for name in ("train", "render"):
        result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for alias in HIDDEN_ALIASES:
            assert alias not in result.output, f"rie {name} --help shows {alias}"


def test_train_dash_c_is_one_line(tmp_path):
    """`rie train -c FILE` (-c was train's --checkpoint-dir) ended in a FileExistsError traceback."""
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x")
    result = runner.invoke(app, ["train", "--stage", "1", "-d", "demo.h5", "-c", str(ckpt)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--checkpoint-dir" in lines[0], result.stderr


@pytest.mark.parametrize("inside", [False, True])
def test_train_checkpoint_dir_that_is_a_file_is_one_line(inside, demo_h5, tmp_path):
    afile = tmp_path / "best.pt"
    afile.write_bytes(b"x")
    directory = afile / "run" if inside else afile
    result = runner.invoke(app, ["train", "--stage", "1", "-d", str(demo_h5), "-k", "gt", "-o", str(directory),
                                 "-e", "1", "--filter-widths", "3"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "a file" in lines[0], result.stderr
    assert "Traceback" not in result.output and afile.read_bytes() == b"x"


def test_architecture_doc_lists_the_short_options():
    """docs/architecture.md's table of option names is SHORT_OPTIONS, row for row."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Option names", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(-[a-zA-Z])` \| ([^|]+) \|", section, flags=re.M))
    assert set(rows) == set(SHORT_OPTIONS)
    for short, longs in SHORT_OPTIONS.items():
        named = rows[short].split(":")[0]  # the long names; what follows explains them
        assert re.findall(r"`(--[a-z-]+)`", named) == list(longs), short
    for alias, current in HIDDEN_ALIASES.items():
        assert f"`{alias}`" in section and f"`{current}`" in section, alias


def test_exit_codes_are_the_readme_s(tmp_path):
    """README: input errors exit 1 (one line), usage errors exit 2 (Click's convention)."""
    usage = runner.invoke(app, ["evaluate", "--no-such-option"])
    assert usage.exit_code == 2 and "No such option" in usage.output
    missing = runner.invoke(app, ["evaluate", "-c", str(tmp_path / "none.pt"), "-d", str(tmp_path / "none.h5"),
                                  "-k", "gt"])
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.output
    readme = (REPO / "README.md").read_text()
    assert "exit code 1" in readme and "exit code 2" in readme


def test_keypoint_source_is_required_where_evaluate_requires_it():
    """export predictions and render defaulted to gt silently; now -k is required, as in evaluate."""
    for name in ("evaluate", "render", "export predictions"):
        command = typer.main.get_command(app)
        for part in name.split():
            command = command.commands[part]
        keypoints = next(p for p in command.params if p.name == "keypoints")
        assert keypoints.required, name
    result = runner.invoke(app, ["render", "-c", "x.pt", "-d", "x.h5", "-s", "S9", "-a", "Walking", "-o", "x.gif"])
    assert result.exit_code == 2 and "--keypoints" in result.output


def test_version_imports_no_torch():
    """`rie --version` answered after importing the commands and torch (~4-7 s); now it imports neither."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['rie', '--version']; from rie_cli.cli import main; main(); "
            "print(sorted(m for m in ('torch', 'numpy', 'typer', 'rie_cli.cli.root') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from rie_cli import __version__

    assert out.splitlines() == [f"rie {__version__}", "[]"]


def test_app_is_the_typer_application_on_every_import():
    from rie_cli.cli import app as first
    from rie_cli.cli import app as second

    assert isinstance(first, typer.Typer) and second is first


# The modules behind the Python API (docs/api.md): their errors name API arguments.
API_MODULES = ["api.py", "lifting.py", "joint_layouts.py", "keypoint_formats.py", "streaming.py", "loading.py",
               "devices.py", "tracking.py", "model/checkpoint.py"]


def test_api_errors_name_arguments_not_cli_options():
    """`Lifter.lift` said "override with --layout"; the API names `layout`, the CLI `--layout`."""
    from rie_cli.errors import RieError
    from rie_cli.cli.common import option_for_argument

    for name in API_MODULES:
        source = (REPO / "rie_cli" / name).read_text()
        messages = re.findall(r"RieError\((.*?)\)(?:\s+from None)?\n", source, flags=re.S)
        # Not a quoted command (`rie train --target trajectory`), nor OpenPose's --keypoint_scale.
        flagged = [m for m in messages if re.search(r"[\s(]--[a-z-]+(?![_a-z])", re.sub(r"`[^`]*`", "", m))]
        assert not flagged, f"rie_cli/{name} names CLI options in {flagged}"
    error = RieError("scored under {min_score} 0.3; give {fmt}", arguments=("min_score", "fmt"))
    assert str(error) == "scored under min_score 0.3; give fmt"
    assert error.render(option_for_argument) == "scored under --min-score 0.3; give --format"


def test_cli_spells_the_options_in_api_errors(tmp_path):
    clip = tmp_path / "clip.npy"
    import numpy as np

    np.save(clip, np.full((4, 17, 2), 500.0, dtype=np.float32))
    (tmp_path / "model.pt").write_bytes(b"x")  # the image size is checked before the model is read
    args = ["predict", "-c", str(tmp_path / "model.pt"), "-k", str(clip), "-o", str(tmp_path / "out.npz")]
    result = runner.invoke(app, args)  # all points at one place: no joint order to tell
    assert result.exit_code == 1 and "set --layout to h36m or coco" in result.stderr, result.output
    result = runner.invoke(app, [*args, "--layout", "h36m", "--width", "1000"])
    assert result.exit_code == 1 and "give both --width and --height" in result.stderr, result.output


def test_one_install_instruction_for_each_extra():
    """ONNX was 'pip install rie[export]', 'pip install -e ".[export]"' or 'pip install onnx ...' by place."""
    from rie_cli.errors import install_hint

    files = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "rie_cli").rglob("*.py")]
    for path in files:
        text = re.sub(r"\s+", " ", path.read_text().replace("\\\\[", "[").replace("\\[", "["))  # Rich escapes '['
        for at in (m.start() for m in re.finditer("pip install", text)):
            command = text[at:at + 40]
            if path.name == "method.md" or re.match(r"pip install (torch==|-e \.(?!\[)|-e \"\.\"|\.)", command):
                continue  # torch itself, rie itself, the authors' instructions
            assert re.match(r'pip install -e "\.\[([a-z]+(,[a-z]+)*|{extra})\]"', command), f"{path.name}: {command}"
    assert install_hint("export") == 'pip install -e ".[export]" in the rie clone'


@pytest.mark.parametrize("command", [["evaluate", "-c", "model.pt", "-k", "gt"],
                                     ["train", "--stage", "1", "-k", "gt", "-o", "run"]])
def test_a_folder_given_as_data_is_one_line(command, tmp_path, monkeypatch):
    """`-d FOLDER` printed h5py's multi-line C-level error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    result = runner.invoke(app, [*command, "-d", "folder"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "folder is a folder" in lines[0], result.stderr


def test_error_lines_are_one_line_even_when_a_library_gave_several(capsys):
    from rie_cli.cli.common import cli_errors
    from rie_cli.errors import RieError

    def broken():
        raise RieError("cannot read x.h5: Unable to open\n  filename = 'x.h5'\n  errno = 21")

    with pytest.raises(typer.Exit):
        cli_errors(broken)()
    assert capsys.readouterr().err.splitlines() == ["error: cannot read x.h5: Unable to open filename = 'x.h5' errno = 21"]
