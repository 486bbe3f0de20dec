"""A non-editable install works anywhere: the wheel carries the recipes and the C++ source, and
`wavegen demo`, `wavegen recipes`, a bundled recipe by name and the bundled run.sh run from a
temporary directory, with no C++ compiler on PATH (so the numba kernel generates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpora"
pytestmark = pytest.mark.slow  # builds and installs the wheel, runs the demo from it


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed with --target into a fresh folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(REPO)]
    try:
        import setuptools  # noqa: F401  the build backend, already here: no download

        build.insert(4, "--no-build-isolation")
    except ImportError:
        pass
    proc = subprocess.run(build, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp / "dist").glob("wavegen-*.whl")
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return wheel, target


def _env(target: Path, tmp_path: Path) -> dict:
    """The installed copy first on sys.path (the test venv's packages behind it), its `wavegen`
    first on PATH, no compiler anywhere on PATH, and an empty kernel cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "dirname", "cat"):  # what run.sh needs, and nothing that compiles
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()))
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", "WAVEGEN_KERNEL", "NUMBA_CACHE_DIR")}
    env.update(
        PYTHONPATH=str(target),
        PATH=f"{target / 'bin'}:{bin_dir}",
        WAVEGEN_CACHE=str(tmp_path / "cache"),
        OMP_NUM_THREADS="1",
    )
    return env


def test_wheel_carries_the_recipes_and_the_kernel_source(installed):
    wheel, target = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("base.yaml", "stages.sh", "ljspeech/config.yaml", "ljspeech/run.sh", "vctk/run.sh"):
        assert f"wavegen/recipes/{name}" in names, name
    assert "wavegen/recipes/demo/config.yaml" in names
    assert "wavegen/generation/sampler.cpp" in names
    assert "wavegen/generation/sampler_bf16.cpp" in names
    assert (target / "wavegen" / "recipes" / "ljspeech" / "run.sh").is_file()


def test_installed_copy_lists_recipes_and_runs_the_demo_without_a_compiler(installed, tmp_path):
    _, target = installed
    env, work = _env(target, tmp_path), tmp_path / "elsewhere"
    work.mkdir()
    wavegen = [sys.executable, "-m", "wavegen"]
    where = subprocess.run(
        [sys.executable, "-c", "import wavegen; print(wavegen.__file__)"],
        env=env,
        cwd=work,
        capture_output=True,
    )
    assert Path(where.stdout.decode().strip()).is_relative_to(target)  # not the editable checkout

    listing = subprocess.run(
        [*wavegen, "recipes", "--json"], env=env, cwd=work, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in map(json.loads, listing.stdout.splitlines())}
    assert {"demo", "ljspeech", "vctk"} <= set(rows)
    assert Path(rows["ljspeech"]["path"]).is_relative_to(target)
    assert (rows["vctk"]["corpus"], rows["vctk"]["preset"]) == ("vctk", "espnet-24k")

    demo = subprocess.run(
        [*wavegen, "demo", "--max-steps", "4", "--set", "train.valid_interval=4"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    report = json.loads((work / "wavegen_demo" / "report.json").read_text())
    assert report["training"]["steps"] == 4 and len(report["wavs"]) == 4
    warm = subprocess.run([*wavegen, "warmup", "--json"], env=env, cwd=work, capture_output=True, text=True)
    assert json.loads(warm.stdout)["backend"] == "numba"  # no compiler: numba, by itself
    assert "no C++ compiler" in json.loads(warm.stdout)["unavailable"]["cpp"]


def test_installed_run_sh_puts_its_work_in_the_current_directory(installed, tmp_path):
    _, target = installed
    env, work = _env(target, tmp_path), tmp_path / "project"
    work.mkdir()
    run_sh = target / "wavegen" / "recipes" / "ljspeech" / "run.sh"
    r = subprocess.run(
        ["bash", str(run_sh), "--dry-run", "--max-steps", "7", "--set", "model.layers=4"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    commands = [line[2:] for line in r.stdout.splitlines() if line.startswith("+ ")]
    config = target / "wavegen" / "recipes" / "ljspeech" / "config.yaml"
    assert f"curl -L --fail --retry 3 -C - -o {work}/data/LJSpeech-1.1.tar.bz2" in " ".join(commands)
    assert (
        f"wavegen train {config} --workdir {work}/exp/ljspeech --run-dir {work}/runs/ljspeech "
        "--set model.layers=4 --max-steps 7" in commands
    )


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED}")
def test_installed_recipe_by_name_reads_the_corpus_from_data_here(installed, tmp_path):
    """`wavegen preprocess ljspeech` from an installed copy looks for ./data/LJSpeech-1.1, not
    inside site-packages."""
    _, target = installed
    env, work = _env(target, tmp_path), tmp_path / "project"
    (work / "data").mkdir(parents=True)
    (work / "data" / "LJSpeech-1.1").symlink_to(SHARED / "ljspeech-mini")
    r = subprocess.run(
        [sys.executable, "-m", "wavegen", "preprocess", "ljspeech", "--json", "--workers", "1"]
        + ["--set", "data.valid_per_speaker=2", "--set", "data.test_per_speaker=2"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["processed"] == 20 and summary["splits"] == {"train": 16, "valid": 2, "test": 2}
    assert (work / "exp" / "ljspeech" / "manifest.jsonl").is_file()
