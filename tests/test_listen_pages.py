"""Every page of a listening test on a phone (390x844 and 320 wide, touch only) and a desktop.

In a real headless Chromium, a listener takes each test type (MUSHRA, MOS, AB, ABX) by taps
only on the phones and by clicks on the desktop; on every screen the tests measure that the
document is no wider than the viewport, that every button, slider, choice and field lies inside
it, that tap targets are at least 44 px, and that keyboard hints appear only where there is a
keyboard. The MUSHRA test is the experimenter's full test (test YAML): consent, volume
calibration, comments, a previous page, a questionnaire and a return URL. Mid-page, each
listener reloads: what they rated, played and wrote must come back, and nothing acknowledged
changes. One browser and one server per test type serve the whole module.
"""

import csv
import json
import sqlite3
from urllib.parse import parse_qs, urlparse

import pytest

from tests.listen_helpers import chromium, make_systems, served, wait_for
from wavegen.listen import analyze, prepare_test
from wavegen.listen.experiment import load_experiment

VIEWPORTS = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "small-phone": {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1366, "height": 768}},
}
NEXT_SAYS = "document.querySelector('#next') && document.querySelector('#next').textContent === '%s'"

EXPERIMENT_YAML = """\
language: en
texts:
  title: Vocoder listening test
consent: |
  This study compares speech vocoders.

  Your ratings are stored without your name. You may stop at any time.
calibration: true
comments: true
previous: true
questionnaire:
  - {id: age, type: number, label: Your age, min: 18, max: 120}
  - {id: device, type: choice, label: You listened with, options: [Headphones, Loudspeakers]}
  - {id: easy, type: likert, label: The test was easy to do, required: false}
  - {id: remarks, type: text, label: "Anything else?", required: false}
return_url: https://app.prolific.com/submissions/complete?cc={code}
"""

# Every visible control and text block: its box, and whether it must be a tap target.
LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  if (document.documentElement.scrollWidth > width)
    problems.push(`document ${document.documentElement.scrollWidth} px wide in ${width}`);
  const targets = "button, a.button, input[type=range], input[type=number], textarea, label.choice, canvas";
  for (const e of document.querySelectorAll(`${targets}, h1, h2, p, legend, output, #progress-text`)) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;  // not shown
    const name = `${e.tagName.toLowerCase()}#${e.id}.${e.className} "${(e.textContent || "").slice(0, 20)}"`;
    if (r.left < -0.5 || r.right > width + 0.5)
      problems.push(`${name}: ${r.left}..${r.right} outside 0..${width}`);
    if (e.matches(targets) && Math.min(r.width, r.height) < 44 - 0.5)
      problems.push(`${name}: ${r.width}x${r.height} smaller than 44 px`);
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("systems"), n_items=2, seconds=1.0)


@pytest.fixture(scope="module")
def tests_served(folders, tmp_path_factory):
    """kind -> (test dir, test, server): MUSHRA with the experimenter's YAML; MOS, AB and ABX
    with one item per listener (fewer pages: the pages, not the items, are under test)."""
    ref, systems = folders
    root = tmp_path_factory.mktemp("tests")
    (root / "test.yaml").write_text(EXPERIMENT_YAML, encoding="utf-8")
    made = {}
    for kind in ("mushra", "mos", "ab", "abx"):
        options = (
            {"experiment": load_experiment(root / "test.yaml")}
            if kind == "mushra"
            else {"items_per_listener": 1}
        )
        made[kind] = (root / kind, prepare_test(kind, root / kind, systems, reference=ref, **options))
    with (
        served(made["mushra"][0]) as m,
        served(made["mos"][0]) as o,
        served(made["ab"][0]) as a,
        served(made["abx"][0]) as x,
    ):
        yield {k: (*made[k], s) for k, s in zip(("mushra", "mos", "ab", "abx"), (m, o, a, x))}


def open_page(browser, size: str, url: str):
    context = browser.new_context(**VIEWPORTS[size])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return context, page, errors


def press(page, selector: str, touch: bool) -> None:
    """A finger's tap on a phone, a mouse click on the desktop."""
    (page.tap if touch else page.click)(selector)


def check_screen(page, touch: bool) -> None:
    assert page.evaluate(LAYOUT) == []
    hints = [h for h in page.query_selector_all(".keys, .choice .key") if h.is_visible()]
    if touch:
        assert hints == []  # no keyboard on a phone: no keyboard hints
    elif page.query_selector("#page-mushra, #page-mos, #page-ab, #page-abx, #instructions"):
        assert hints


def start(page, touch: bool, calibration: bool = False) -> None:
    page.wait_for_selector("#instructions")
    check_screen(page, touch)
    press(page, "#start", touch)
    if calibration:
        page.wait_for_selector("#calibration")
        assert page.is_disabled("#calibrated")  # the sound must be played to set the volume
        press(page, "button.play", touch)
        check_screen(page, touch)
        press(page, "#calibrated", touch)
    page.wait_for_selector("#training")
    check_screen(page, touch)
    reference = page.query_selector("button.play.reference")
    hint = page.query_selector(".keys")
    if page.evaluate("wavegen.state.type") in ("mos", "ab"):  # no reference: none advertised
        assert reference is None and (hint is None or "reference" not in hint.text_content())
    press(page, "#begin", touch)


def tap_slider(page, index: int, fraction: float, touch: bool) -> int:
    """Put a finger (or the mouse) on MUSHRA slider ``index`` at ``fraction`` of its travel
    (0: the bottom of the scale) -> the rating it now shows."""
    box = page.locator(f"#rating-{index}").bounding_box()
    vertical = box["height"] > box["width"]
    x = box["x"] + (box["width"] / 2 if vertical else 14 + fraction * (box["width"] - 28))
    y = box["y"] + (box["height"] - 14 - fraction * (box["height"] - 28) if vertical else box["height"] / 2)
    if touch:
        page.touchscreen.tap(x, y)
    else:
        page.mouse.click(x, y)
    value = page.text_content(f"#value-{index}")
    assert value.isdigit(), value
    assert abs(int(value) - 100 * fraction) <= 6
    assert "untouched" not in page.get_attribute(f"#rating-{index}", "class")
    return int(value)


def reload_and_continue(page, touch: bool) -> None:
    token = page.evaluate("wavegen.state.page.token")
    page.reload()
    page.wait_for_selector("#welcome-back")
    check_screen(page, touch)
    press(page, "#continue", touch)
    page.wait_for_selector("#next")
    assert page.evaluate("wavegen.state.page.token") == token


def next_page(page, touch: bool) -> None:
    token = page.evaluate("wavegen.state.page.token")
    press(page, "#next", touch)
    wait_for(page, f"!wavegen.state.page || wavegen.state.page.token !== '{token}'")


def rows(test_dir, query: str, *args):
    db = sqlite3.connect(test_dir / "answers.sqlite")
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_mushra_with_experimenter_pages(browser, tests_served, size, tmp_path):
    test_dir, test, server = tests_served["mushra"]
    touch = VIEWPORTS[size].get("has_touch", False)
    listener = f"mushra-{size}"
    context, page, errors = open_page(browser, size, f"{server.url}/?listener={listener}")
    try:
        page.wait_for_selector("#consent")
        check_screen(page, touch)
        assert page.text_content("h1") == "Vocoder listening test"  # the YAML's wording
        assert "stored without your name" in page.text_content("#consent")
        press(page, "#agree", touch)
        start(page, touch, calibration=True)

        # Page 1: untouched sliders look untouched; rate two, play three, write a comment, reload.
        page.wait_for_selector("#page-mushra")
        check_screen(page, touch)
        n = len(page.evaluate("wavegen.state.page.stimuli"))
        for i in range(1, n + 1):
            assert "untouched" in page.get_attribute(f"#rating-{i}", "class")
            assert page.text_content(f"#value-{i}") == "–"
        press(page, "button.play[data-index='1']", touch)
        press(page, "button.play[data-index='2']", touch)
        first = {1: tap_slider(page, 1, 0.3, touch), 2: tap_slider(page, 2, 0.8, touch)}
        page.fill("#comment", "version 2 crackles")
        reload_and_continue(page, touch)
        for i in range(1, n + 1):
            restored = page.text_content(f"#value-{i}")
            assert restored == (str(first[i]) if i in first else "–")
            assert ("untouched" in page.get_attribute(f"#rating-{i}", "class")) == (i not in first)
        assert page.input_value("#comment") == "version 2 crackles"
        assert page.text_content("#hint") == f"Listen to {n - 2} more versions."  # the plays came back
        for i in range(3, n + 1):
            press(page, f"button.play[data-index='{i}']", touch)
            first[i] = tap_slider(page, i, 0.1 * i, touch)

        # The loop region: dragged on the waveform, the same for every sound of the page.
        box = page.locator("#waveform").bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + 0.25 * box["width"], y, steps=4)
        page.mouse.up()
        wait_for(page, "wavegen.player.loop !== null")
        loop = page.evaluate("wavegen.player.loop")
        assert loop[0] == pytest.approx(0.25, abs=0.06) and loop[1] == pytest.approx(1.0, abs=0.01)
        assert page.evaluate(
            "wavegen.player.sources.every((s) => s.loop && s.loopStart === wavegen.player.loop[0]"
            " && s.loopEnd === wavegen.player.loop[1])"
        )
        wait_for(page, "wavegen.player.position() > 0")
        assert loop[0] <= page.evaluate("wavegen.player.position()") <= loop[1]
        tokens = page.evaluate("wavegen.state.page.stimuli")
        next_page(page, touch)

        # Page 2: go back to page 1 (the previous page), change one rating, return.
        page.wait_for_selector("#page-mushra")
        press(page, "#previous", touch)
        wait_for(page, NEXT_SAYS % "Save and return")
        assert (
            page.text_content("#value-1") == str(first[1])
            and page.input_value("#comment") == "version 2 crackles"
        )
        first[1] = tap_slider(page, 1, 0.95, touch)
        press(page, "#next", touch)
        wait_for(
            page,
            NEXT_SAYS % "Finish",
        )
        for i in range(1, n + 1):
            press(page, f"button.play[data-index='{i}']", touch)
            tap_slider(page, i, 0.5, touch)
        next_page(page, touch)

        # The questionnaire: required answers are asked for, then stored; then the return link.
        page.wait_for_selector("#questionnaire")
        check_screen(page, touch)
        press(page, "#next", touch)
        assert "Your age" in page.text_content("#hint")
        page.fill("#q-age", "34")
        press(page, "label:has(#q-device-0)", touch)
        press(page, "label:has(#q-easy-3)", touch)
        page.reload()  # a questionnaire half filled in survives a reload too
        page.wait_for_selector("#questionnaire")
        assert page.input_value("#q-age") == "34" and page.is_checked("#q-device-0")
        press(page, "#next", touch)
        page.wait_for_selector("#done")
        check_screen(page, touch)
        code = page.text_content("#completion-code")
        link = urlparse(page.get_attribute("#return", "href"))
        assert link.netloc == "app.prolific.com" and parse_qs(link.query)["cc"] == [code]
        assert errors == []
    finally:
        context.close()

    stored = dict(
        rows(test_dir, "SELECT condition, score FROM ratings WHERE listener = ? AND page = 0", listener)
    )
    plan = json.loads(rows(test_dir, "SELECT plan FROM listeners WHERE listener = ?", listener)[0][0])
    assert {plan["audio"][t][1]: first[i] for i, t in enumerate(tokens, 1)} == stored  # the revision too
    (response,) = rows(test_dir, "SELECT response FROM answers WHERE listener = ? AND page = 0", listener)
    assert json.loads(response[0])["comment"] == "version 2 crackles"
    assert dict(
        rows(test_dir, "SELECT question, answer FROM questionnaire WHERE listener = ?", listener)
    ) == {
        "age": "34",
        "device": "Headphones",
        "easy": "4",
        "remarks": "",
    }
    # The export: the comment in answers.csv, the questionnaire in questionnaire.csv.
    analyze(tmp_path / "out", test_dir=test_dir)
    with open(tmp_path / "out" / "answers.csv", newline="") as f:
        mine = [r for r in csv.DictReader(f) if r["listener"] == listener]
    assert {r["rating_comment"] for r in mine if r["trial_id"] == plan["pages"][0]["item"]} == {
        "version 2 crackles"
    }
    with open(tmp_path / "out" / "questionnaire.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["session_test_id", "listener", "age", "device", "easy", "remarks"]
    assert {"listener": listener, "age": "34", "device": "Headphones", "easy": "4"}.items() <= next(
        r for r in table if r["listener"] == listener
    ).items()


def test_consent_refused_stores_nothing(browser, tests_served):
    test_dir, _, server = tests_served["mushra"]
    context, page, errors = open_page(browser, "small-phone", f"{server.url}/?listener=says-no")
    try:
        page.wait_for_selector("#consent")
        page.tap("#refuse")
        page.wait_for_selector("#refused")
        check_screen(page, True)
        assert "Nothing about you was stored" in page.text_content("#refused")
        assert page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('wavegen'))") == []
        assert errors == []
        # The layout check itself catches a page wider than the screen.
        page.evaluate("document.querySelector('#refused').style.minWidth = '400px'")
        assert any("document 4" in problem for problem in page.evaluate(LAYOUT))
    finally:
        context.close()
    assert rows(test_dir, "SELECT * FROM listeners WHERE listener = 'says-no'") == []


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("kind", ["mos", "ab", "abx"])
def test_choice_pages(browser, tests_served, kind, size):
    """MOS, AB and ABX to the end by taps (phones) or clicks; a reload mid-page keeps the plays
    and the choice; the stored answers are the ones chosen."""
    test_dir, _, server = tests_served[kind]
    touch = VIEWPORTS[size].get("has_touch", False)
    listener = f"{kind}-{size}"
    context, page, errors = open_page(browser, size, f"{server.url}/?listener={listener}")
    option = {"mos": "score", "ab": "choice", "abx": "choice"}[kind]
    values = {"mos": ["4", "2", "5"], "ab": ["A", "none", "B"], "abx": ["A", "B"]}[kind]
    chosen = []
    try:
        start(page, touch)
        number = 0
        while True:
            page.wait_for_selector(f"#page-{kind}, #done")
            if page.query_selector("#done"):
                break
            check_screen(page, touch)
            assert page.is_visible("#waveform") == (kind != "mos")  # AB and ABX loop like MUSHRA
            for button in page.query_selector_all("button.play"):
                (button.tap if touch else button.click)()
            value = values[number % len(values)]
            press(page, f"label:has(#{option}-{value})", touch)
            if number == 1:
                reload_and_continue(page, touch)
                assert page.is_checked(f"#{option}-{value}") and page.text_content("#hint") == ""
            assert page.is_enabled("#next")
            chosen.append(value)
            next_page(page, touch)
            number += 1
        check_screen(page, touch)
        assert errors == []
    finally:
        context.close()
    if kind == "mos":
        stored = [
            str(s)
            for (s,) in rows(test_dir, "SELECT score FROM ratings WHERE listener = ? ORDER BY page", listener)
        ]
    else:
        stored = [
            c
            for (c,) in rows(
                test_dir, "SELECT choice FROM choices WHERE listener = ? ORDER BY page", listener
            )
        ]
    assert stored == chosen and len(chosen) >= 2


def test_twelve_conditions_on_a_small_phone(browser, folders, tmp_path):
    """The most MUSHRA allows (12 conditions) at 320 px: every slider and play button inside
    the screen, one under the other, each reachable and rated by a tap."""
    ref, systems = folders
    many = {f"sys{k}": systems["griffinlim" if k % 2 else "sysalpha"] for k in range(9)}
    test_dir = tmp_path / "twelve"
    prepare_test("mushra", test_dir, many, reference=ref, items_per_listener=1)
    with served(test_dir) as server:
        context, page, errors = open_page(browser, "small-phone", f"{server.url}/?listener=twelve")
        try:
            start(page, True)
            page.wait_for_selector("#page-mushra")
            check_screen(page, True)
            assert len(page.evaluate("wavegen.state.page.stimuli")) == 12
            tops = [page.locator(f"#rating-{i}").bounding_box()["y"] for i in range(1, 13)]
            assert tops == sorted(tops)  # a vertical list
            for i in range(1, 13):
                page.tap(f"button.play[data-index='{i}']")
                tap_slider(page, i, 0.5, True)
            assert page.text_content("#hint") == "" and page.is_enabled("#next")
            assert errors == []
        finally:
            context.close()
