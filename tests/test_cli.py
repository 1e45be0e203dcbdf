"""One way into every job (sa0.cli): every job takes --help, --print-config, --recipe and --set; no
flag is defined twice; flags and --set go through the same typed checks and errors name the flag
and the key; the README's command table names only flags the jobs have."""

import ast
import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import pytest

from sa0.cli import SHARED, Flag, JobSpec, parse_job

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.py"))
# the least each job needs for --print-config (required inputs)
MINIMAL = {"refine_batch": ["--subjects", "a"], "tune_antispike": ["--subjects", "a"],
           "export_web": ["--avatar", "x.npz"], "reenact": ["--avatar", "x.npz"], "export": ["--avatar", "x.npz"],
           "drive": ["--avatar", "x.npz", "--video", "v.mp4"]}


def _job(name: str):
    spec = importlib.util.spec_from_file_location(f"job_{name}", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _specs() -> dict[str, JobSpec]:
    specs = {}
    for name in JOBS:
        module = _job(name)
        if hasattr(module, "COMMANDS"):
            specs.update({f"{name} {c}": s for c, s in module.COMMANDS.items()})
        else:
            specs[name] = module.SPEC
    return specs


def test_every_job_is_a_spec_with_the_common_flags():
    specs = _specs()
    assert {"train_generator", "refine_batch", "evaluate", "track", "export_web", "reenact", "tune_antispike",
            "make_shards synthetic", "make_shards convert"} <= set(specs)
    from sa0.cli import build_parser

    for name, spec in specs.items():
        options = build_parser(spec)._option_string_actions
        assert {"--help", "--recipe", "--set", "--print-config"} <= set(options), name
        for flag in spec.all_flags():
            assert flag.key, f"{name}: {flag.names[0]} sets no config key"


def test_no_job_script_defines_its_own_argparse_flags():
    for name in JOBS:
        source = (ROOT / "jobs" / f"{name}.py").read_text()
        assert "add_argument" not in source and "ArgumentParser" not in source, name


def test_no_flag_is_defined_twice():
    """Each flag name appears in exactly one Flag(...) literal across jobs/ and sa0/ (a job uses a shared
    one through JobSpec.shared, or reuses the one object)."""
    defined: dict[str, list[str]] = {}
    for path in [*(ROOT / "jobs").glob("*.py"), *(ROOT / "sa0").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Flag" and node.args:
                names = node.args[0]
                if isinstance(names, ast.Tuple):
                    for element in names.elts:
                        defined.setdefault(element.value, []).append(str(path.relative_to(ROOT)))
    assert len(defined) > 30
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert not twice, twice
    for flag in SHARED.values():
        assert flag.names[0] in defined


@pytest.mark.parametrize("name", [n for n in JOBS if n not in ("make_shards", "evaluate", "track")])
def test_print_config_prints_the_resolved_config(name, capsys, tmp_path):
    main = _job(name).main
    with pytest.raises(SystemExit) as stop:
        main([*MINIMAL.get(name, []), "--out", str(tmp_path / "o"), "--print-config"])
    assert stop.value.code == 0, capsys.readouterr().err
    config = json.loads(capsys.readouterr().out)
    assert json.dumps(config).count(str(tmp_path / "o")) == 1


def test_flags_and_set_share_the_typed_checks_and_name_the_key(capsys):
    main = _job("refine_batch").main
    for argv, words in [(["--steps", "abc"], ["--steps abc", "refine.steps", "int"]),
                        (["--set", "refine.steps=abc"], ["refine.steps", "int"]),
                        (["--set", "refine.nope=1"], ["unknown key 'refine.nope'"]),
                        (["--max-in-flight", "0"], ["--max-in-flight 0", "max_in_flight must be >= 1"]),
                        ([], ["--subjects is required"])]:
        with pytest.raises(SystemExit) as stop:
            main(["--subjects", "a", *argv] if argv else argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), (argv, err)


def test_inputs_are_checked_before_the_config_is_printed(capsys, tmp_path):
    for name, argv, words in [("track", ["--video", str(tmp_path / "no.mp4")], "no.mp4: no such file"),
                              ("track", [], "exactly one of --video"),
                              ("evaluate", ["--checkpoint", str(tmp_path), "--data", "d"], "not a complete exported"),
                              ("evaluate", ["--data", "d"], "exactly one of --checkpoint")]:
        with pytest.raises(SystemExit) as stop:
            _job(name).main([*argv, "--print-config"])
        assert stop.value.code == 2 and words in capsys.readouterr().err, (name, argv)


def test_a_section_check_names_the_dotted_key_the_user_set(capsys):
    main = _job("train_generator").main
    with pytest.raises(SystemExit):
        main(["--set", "phase1.steps=-3"])
    assert "'phase1.steps=-3'" in capsys.readouterr().err


def test_make_shards_commands(capsys):
    main = _job("make_shards").main
    with pytest.raises(SystemExit) as stop:
        main(["nosuch"])
    assert stop.value.code == 2 and "synthetic, convert, validate, upgrade" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["synthetic", "--out", "x", "--domain", "bogus", "--print-config"])
    assert stop.value.code == 2 and "--domain bogus" in capsys.readouterr().err


def test_a_flag_with_items_and_a_positional():
    spec = JobSpec(doc="t", recipes={"default": lambda: _Toy()},
                   flags=(Flag(("path",), "path"), Flag(("--off",), "n", items=lambda v: [f"n={int(v) * 2}"])))
    toy = parse_job(spec, ["p", "--off", "3"])
    assert toy.path == "p" and toy.n == 6


def _readme_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Commands"):text.index("## Library tour")]
    return [line for line in table.splitlines() if line.startswith("| `python jobs/")]


def test_the_readme_command_table_names_only_real_flags():
    from sa0.cli import build_parser

    specs, rows = _specs(), _readme_rows()
    named = set()
    for row in rows:
        command = row.split("`")[1].replace("\\|", "|")
        job = re.match(r"python jobs/(\w+)\.py(?: (synthetic|convert|validate|upgrade))?", command)
        key = " ".join(g for g in job.groups() if g)
        named.add(key)
        options = build_parser(specs[key])._option_string_actions
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command):
            assert flag in options, f"README: `{command}` names {flag}, which {key} does not take"
    assert named == set(specs), f"jobs missing from the README's command table: {set(specs) - named}"


@dataclasses.dataclass(frozen=True)
class _Toy:
    path: str = ""
    n: int = 0


def test_the_readme_own_video_block_uses_the_paths_the_jobs_write():
    from sa0.refine.job import RefineJob

    text = (ROOT / "README.md").read_text()
    block = text[text.index("### Your own video in, an avatar out"):].split("```")[1]
    track, refine, web = [line.split("#")[0].split() for line in block.strip().splitlines()[1:4]]
    assert track[:4] == ["python", "jobs/track.py", "--video", "me.mp4"] and "--out" not in track
    shards = refine[refine.index("--shards") + 1]
    assert shards == "data/me", "track.py writes data/<video name> by default"
    assert web[web.index("--avatar") + 1] == f"{RefineJob().out}/me/avatar.npz"
