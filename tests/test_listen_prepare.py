"""wavegen listen prepare: matched items, one rate and length, loudness, anchors, atomic test dirs."""

import json
import os
import stat
from collections import Counter

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from tests.listen_helpers import RATE, make_systems, voice
from wavegen.core.errors import WavegenError
from wavegen.listen import load_test, prepare_test
from wavegen.listen.plan import assigned_items, make_plan
from wavegen.listen.spec import ANCHORS


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("systems"), n_items=2)


@pytest.fixture(scope="module")
def mushra(folders, tmp_path_factory):
    ref, systems = folders
    out = tmp_path_factory.mktemp("tests") / "mushra"
    return out, prepare_test("mushra", out, systems, reference=ref, seed=3)


def test_mushra_stimuli_are_matched_in_rate_length_and_loudness(mushra, folders):
    out, test = mushra
    assert test == load_test(out)  # what prepare returns is what test.json says
    assert test.sample_rate == RATE and test.loudness_lufs == -23.0
    assert [it.id for it in test.items] == ["utt_one", "utt_two"]
    meter = pyloudnorm.Meter(RATE)
    for item in test.items:
        # the hidden reference, both anchors and the two systems; ids reveal nothing
        assert sorted(c.system for c in item.conditions) == [
            "anchor35",
            "anchor70",
            "griffinlim",
            "reference",
            "sysalpha",
        ]
        assert sorted(c.id for c in item.conditions) == ["c1", "c2", "c3", "c4", "c5"]
        lengths = set()
        for c in item.conditions:
            wav, sr = sf.read(out / c.file)
            assert sr == RATE
            lengths.add(len(wav))
            loudness = meter.integrated_loudness(wav)
            assert abs(loudness - (-23.0)) <= 0.5, (c.file, loudness)
            assert abs(c.gain_db - (-23.0 - c.source_lufs)) < 1e-2  # the gain is recorded
            assert np.abs(wav).max() <= 10 ** (-1 / 20) + 1e-4  # peak at most -1 dBFS: not clipped
            assert "/" not in c.file[len("stimuli/") :] and c.system not in c.file  # opaque names
        # sysalpha was 50 ms longer at 16 kHz: resampled and cut to the reference's length
        assert lengths == {int(1.2 * RATE)}
    # the systems' folders were matched by file name
    assert {c.source for c in test.items[0].conditions if c.system == "sysalpha"} == {
        str(folders[1]["sysalpha"] / "utt_one.wav")
    }


def test_anchors_have_nothing_above_their_cutoff(mushra):
    out, test = mushra
    for item in test.items:
        for anchor, cutoff in ANCHORS.items():
            wav, sr = sf.read(out / item.by_system(anchor).file)
            spectrum = np.abs(np.fft.rfft(wav))
            freqs = np.fft.rfftfreq(len(wav), 1 / sr)
            passband = spectrum[freqs <= cutoff].max()
            above = spectrum[freqs > cutoff].max()
            assert 20 * np.log10(above / passband) <= -60, (anchor, 20 * np.log10(above / passband))
        # ...while the reference itself does have energy up there (the check could fail)
        ref, sr = sf.read(out / item.by_system("reference").file)
        spectrum = np.abs(np.fft.rfft(ref))
        freqs = np.fft.rfftfreq(len(ref), 1 / sr)
        assert 20 * np.log10(spectrum[freqs > 7000].max() / spectrum.max()) > -40


def test_never_clipped_lowers_the_target_for_all(tmp_path):
    ref, sysdir = tmp_path / "ref", tmp_path / "peaky"
    ref.mkdir(), sysdir.mkdir()
    quiet = voice(1.0, RATE, 150, seed=1)
    # Rare full-scale clicks in a very quiet signal: at -23 LUFS its peak would go far over 0 dBFS.
    clicks = 0.02 * quiet
    clicks[::5000] = 0.99
    sf.write(ref / "a.wav", quiet, RATE, subtype="FLOAT")
    sf.write(sysdir / "a.wav", clicks, RATE, subtype="FLOAT")
    test = prepare_test("mos", tmp_path / "t", {"peaky": sysdir}, reference=ref)
    assert test.loudness_lufs < -23.0
    meter = pyloudnorm.Meter(RATE)
    for c in test.items[0].conditions:
        wav, _ = sf.read(tmp_path / "t" / c.file)
        assert np.abs(wav).max() <= 10 ** (-1 / 20) + 1e-4
        assert abs(meter.integrated_loudness(wav) - test.loudness_lufs) <= 0.5  # still matched
    assert max(c.peak_dbfs for c in test.items[0].conditions) == pytest.approx(-1.0, abs=0.01)


def test_items_matched_by_name_and_unmatched_reported(folders, tmp_path):
    ref, systems = folders
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "utt_one.wav").write_bytes((systems["griffinlim"] / "utt_one.wav").read_bytes())
    (partial / "unrelated.wav").write_bytes((systems["griffinlim"] / "utt_two.wav").read_bytes())
    test = prepare_test("ab", tmp_path / "t", {"sysalpha": systems["sysalpha"], "partial": partial})
    assert [it.id for it in test.items] == ["utt_one"]
    assert test.extra["unmatched"] == ["unrelated", "utt_two"]
    assert sorted(c.system for c in test.items[0].conditions) == ["partial", "sysalpha"]


def test_bad_arguments_leave_nothing_behind(folders, tmp_path):
    ref, systems = folders
    out = tmp_path / "t"
    with pytest.raises(WavegenError, match="needs --ref"):
        prepare_test("mushra", out, systems)
    with pytest.raises(WavegenError, match="at most 12 conditions"):
        prepare_test("mushra", out, {f"s{i}": systems["sysalpha"] for i in range(10)}, reference=ref)
    with pytest.raises(WavegenError, match="reserved"):
        prepare_test("mos", out, {"anchor35": systems["sysalpha"]}, reference=ref)
    with pytest.raises(WavegenError, match="--type"):
        prepare_test("abc", out, systems, reference=ref)
    with pytest.raises(WavegenError, match="--gold"):
        prepare_test("mos", out, systems, gold=True)
    with pytest.raises(WavegenError, match="only 2 items"):
        prepare_test("mos", out, systems, reference=ref, items_per_listener=3)
    # A silent file in the middle of the work: an error naming it, and no test dir, no scratch.
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(silent / "utt_one.wav", voice(1.2, RATE, 100, 0), RATE)
    sf.write(silent / "utt_two.wav", np.zeros(int(1.2 * RATE), np.float32), RATE)
    with pytest.raises(WavegenError, match="utt_two.wav.*silent"):
        prepare_test("mushra", out, {"silent": silent}, reference=ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silent"]
    # An existing test is never overwritten.
    prepare_test("mos", out, {"sysalpha": systems["sysalpha"]}, reference=ref)
    before = (out / "test.json").read_text()
    with pytest.raises(WavegenError, match="already exists"):
        prepare_test("mos", out, {"sysalpha": systems["sysalpha"]}, reference=ref)
    assert (out / "test.json").read_text() == before


def test_cli_prepare_and_one_line_errors(folders, tmp_path, capsys):
    from wavegen.cli import main

    ref, systems = folders
    with pytest.raises(SystemExit) as exit_info:  # typer's standalone mode exits, with 0 on success
        alpha = f"sysalpha={systems['sysalpha']}"
        main(
            [
                "listen",
                "prepare",
                "--type",
                "abx",
                "--ref",
                str(ref),
                "--sys",
                alpha,
                "-o",
                str(tmp_path / "x"),
            ]
        )
    assert exit_info.value.code in (0, None)
    assert json.loads((tmp_path / "x" / "test.json").read_text())["type"] == "abx"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", "prepare", "--type", "mushra", "--sys", "nodir", "-o", str(tmp_path / "y")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["wavegen: error: --sys 'nodir': expected NAME=DIR"]
    assert not (tmp_path / "y").exists()


def test_plans_per_type_and_balanced_subsets(folders, tmp_path):
    ref, systems = folders
    mos = prepare_test("mos", tmp_path / "mos", systems, reference=ref, gold=True)
    plan = make_plan(mos, "listener-a", 0)
    assert len(plan["pages"]) == 2 * 3  # every (item, condition), one per page
    assert plan == plan | {}  # JSON-able dict
    assert make_plan(mos, "listener-a", 0)["items"] == plan["items"]  # seeded per listener
    tokens = [t for p in plan["pages"] for t in p["stimuli"]] + plan["training"]["stimuli"]
    assert len(set(tokens)) == len(tokens) == len(plan["audio"])  # a token per slot, never reused
    ab = prepare_test("ab", tmp_path / "ab", systems, reference=ref)
    assert len(make_plan(ab, "x", 0)["pages"]) == 2 * 3  # 3 systems -> 3 pairs per item
    abx = prepare_test("abx", tmp_path / "abx", systems, reference=ref)
    pages = make_plan(abx, "x", 0)["pages"]
    assert len(pages) == 2 * 2 and all(p["x"] for p in pages)

    # Balanced subsets: 5 items, 2 per listener; after any number of listeners the counts differ
    # by at most one.
    many = make_systems(tmp_path / "five", n_items=5, seconds=0.6)
    test = prepare_test("mos", tmp_path / "m5", many[1], reference=many[0], items_per_listener=2, seed=1)
    counts = Counter()
    for seq in range(12):
        subset = assigned_items(test, seq)
        assert len(set(subset)) == 2
        counts.update(subset)
        assert max(counts.values()) - min(counts[i.id] for i in test.items) <= 1


def test_a_system_file_too_short_for_loudness_is_the_one_named(folders, tmp_path):
    """Every stimulus of an item is cut to the shortest file; when that is too short to measure,
    the error named the reference (measured first), not the system's short file."""
    ref, systems = folders
    short = tmp_path / "short"
    short.mkdir()
    for path in sorted(ref.glob("*.wav")):
        wav, sr = sf.read(path, dtype="float32")
        sf.write(short / path.name, wav[: int(0.3 * sr)], sr)
    first = sorted(short.glob("*.wav"))[0]
    with pytest.raises(WavegenError) as err:
        prepare_test("mos", tmp_path / "t", {"short": short}, reference=ref)
    assert str(err.value).startswith(f"{first}: 0.30 s of audio; loudness matching needs at least"), err.value
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("seconds", [0.3, float("nan"), -1.0])
def test_max_seconds_below_what_loudness_needs_is_refused_as_the_option(folders, tmp_path, seconds):
    """--max-seconds 0.3 was an error naming the reference file's "0.30 s of audio"."""
    ref, systems = folders
    with pytest.raises(WavegenError, match=r"^--max-seconds .*: expected at least 0.5 s"):
        prepare_test("mos", tmp_path / "t", systems, reference=ref, max_seconds=seconds)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_the_test_folder_honours_the_umask(folders, tmp_path, umask):
    """The folder was made 755 whatever the umask; now as mkdir would make it."""
    ref, systems = folders
    old = os.umask(umask)
    try:
        prepare_test("mos", tmp_path / "t", {"sysalpha": systems["sysalpha"]}, reference=ref)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o777 & ~umask


FILE_SIZE_LIMITED = """
import resource, signal, sys
from pathlib import Path
from wavegen.listen import prepare_test
from wavegen.core.errors import WavegenError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
root = Path(sys.argv[1])
try:
    prepare_test("mos", root / "t", {"sysalpha": sys.argv[2]}, reference=sys.argv[3])
except WavegenError as err:
    print(err)
"""


def test_a_failed_write_in_the_scratch_folder_names_the_os_reason(folders, tmp_path):
    """The measured stimuli were saved with np.save, whose failed writes say only "N requested
    and M written" (an internal error); now every file goes through the atomic writers."""
    import subprocess
    import sys

    ref, systems = folders
    args = [str(tmp_path), str(systems["sysalpha"]), str(ref)]
    r = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMITED, *args], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("\n") == 1, (r.stdout, r.stderr)
    assert "cannot write: File too large [EFBIG]" in r.stdout, r.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_first_file_is_one_line_naming_it(folders, tmp_path):
    """Found by the #18 hunt: the test's rate was read from the first file with sf.info, and a
    file that is not audio was an internal LibsndfileError."""
    ref, systems = folders
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in ref.glob("*.wav"):
        (bad / path.name).write_text("not audio")
    first = sorted(bad.glob("*.wav"))[0]
    with pytest.raises(WavegenError, match=rf"^{first}: not readable as audio"):
        prepare_test("mos", tmp_path / "t", {"sysalpha": systems["sysalpha"]}, reference=bad)
    assert not (tmp_path / "t").exists()


def test_experimenter_yaml_through_the_cli_and_its_one_line_errors(folders, tmp_path, capsys):
    """`listen prepare --config test.yaml` keeps the experimenter's pages in test.json; every
    mistake in the file is one line naming the file and the field, and no test dir is made."""
    from wavegen.cli import main
    from wavegen.listen.experiment import shipped_wording

    ref, systems = folders
    good = tmp_path / "test.yaml"
    good.write_text(
        "language: de\n"
        "texts: {title: Hörtest Vocoder, scale: [A, B, C, D, E]}\n"
        "consent: Wir vergleichen Vocoder.\n"
        "calibration: true\ncomments: true\nprevious: false\n"
        "questionnaire:\n"
        "  - {id: age, type: number, label: Alter, min: 18}\n"
        '  - {id: easy, type: likert, label: "Leicht?", required: false}\n'
        "return_url: https://example.org/done?code={code}\n",
        encoding="utf-8",
    )
    args = [
        "listen",
        "prepare",
        "--type",
        "ab",
        "--sys",
        f"sysalpha={systems['sysalpha']}",
        "--ref",
        str(ref),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--config", str(good), "-o", str(tmp_path / "ok")])
    assert exit_info.value.code in (0, None)
    test = load_test(tmp_path / "ok")
    assert test.experiment.language == "de" and test.experiment.consent == "Wir vergleichen Vocoder."
    assert [q.id for q in test.experiment.questionnaire] == ["age", "easy"]
    words = test.experiment.wording()
    assert words["title"] == "Hörtest Vocoder" and words["next"] == "Weiter" and words["scale"][0] == "A"
    # The worked example translates every word of the English wording.
    assert set(shipped_wording("de")) == set(shipped_wording("en"))

    bad = {
        "colour: blue\n": "test.yaml: unknown key(s) colour",
        "texts: {nonsense: x}\n": "test.yaml: texts.nonsense: not a wording key",
        "texts: {scale: [a, b]}\n": "test.yaml: texts.scale: expected a list of 5 strings",
        "language: fr\n": "test.yaml: language 'fr': expected one of en, de",
        "calibration: yes please\n": "test.yaml: calibration: expected true or false",
        "questionnaire: [{id: q, type: slider, label: Q}]\n": "test.yaml: questionnaire[0]: type 'slider'",
        "questionnaire: [{id: q, type: choice, label: Q, options: [one]}]\n": "needs at least two options",
        "questionnaire: [{id: 1q, type: text, label: Q}]\n": "questionnaire[0]: id: expected a letter",
        "return_url: javascript:alert(1)\n": "test.yaml: return_url: expected an http(s) URL",
        "consent: [a\n": "test.yaml:2: not valid YAML",
    }
    for text, message in bad.items():
        good.write_text(text, encoding="utf-8")
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--config", str(good), "-o", str(tmp_path / "bad")])
        assert exit_info.value.code != 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wavegen: error: ") and message in lines[0], (
            text,
            lines,
        )
        assert not (tmp_path / "bad").exists()


def test_readme_test_file_is_valid():
    """The README's example test file is one `listen prepare --config` accepts."""
    import re
    from pathlib import Path

    import yaml

    from wavegen.listen.experiment import parse_experiment

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "questionnaire:" in b]
    exp = parse_experiment(yaml.safe_load(block), "README.md")
    assert exp.language == "de" and len(exp.questionnaire) == 4 and "{code}" in exp.return_url


MANY_OPTIONS = ", ".join(f"o{i}" for i in range(101))
MANY_QUESTIONS = ", ".join(f"{{id: q{i}, type: text, label: L}}" for i in range(101))
LONG_OPTION = "y" * 5000


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "questionnaire: [{id: a, type: number, label: A, min: .nan}]",
            "questionnaire[0]: min: expected a finite",
        ),
        (
            "questionnaire: [{id: a, type: number, label: A, max: .inf}]",
            "questionnaire[0]: max: expected a finite",
        ),
        (
            "questionnaire: [{id: a, type: likert, label: A, options: [x]}]",
            "a likert scale needs at least two",
        ),
        (
            f"questionnaire: [{{id: a, type: choice, label: A, options: [x, {LONG_OPTION}]}}]",
            "1-4000 characters",
        ),
        (
            f"questionnaire: [{{id: a, type: choice, label: A, options: [{MANY_OPTIONS}]}}]",
            "at most 100, got 101",
        ),
        (f"questionnaire: [{MANY_QUESTIONS}]", "at most 100 questions"),
        ('return_url: "https://example.org/done?cc={code}\\n"', "return_url: expected an http(s) URL"),
    ],
)
def test_experimenter_values_out_of_bounds_are_one_line(text, message):
    """A NaN or infinite min/max (YAML's .nan, .inf) disabled the number check, a one-point likert
    is no scale, options and questions had no bound (a 100,000-option choice was served), and a
    return_url with a trailing newline passed the URL pattern ($ matches before a final newline)."""
    import yaml

    from wavegen.listen.experiment import parse_experiment

    with pytest.raises(WavegenError) as err:
        parse_experiment(yaml.safe_load(text), "test.yaml")
    assert message in str(err.value) and str(err.value).startswith("test.yaml: ")
