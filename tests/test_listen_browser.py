"""A listener in a real headless Chromium completes a MUSHRA and a MOS test by clicking and playing.

The "listener" is a small robot: on each MUSHRA page it compares the decoded audio of every
version with the reference's, in the page, and rates by that SNR (the hidden reference, equal to
the reference, gets 100); then it plays each version and sets each slider by clicking on it and
nudging it with the arrow keys, as a person would. It never sees a system name: the tests check
that none is reachable from the page or any of its requests.
"""

import json
import re
import sqlite3
from collections import defaultdict

import pytest

from tests.listen_helpers import SYSTEMS, chromium, make_systems, served, wait_for
from wavegen.listen import prepare_test

pytestmark = pytest.mark.slow  # drives Chromium through whole tests
ROBOT_SCORES = """() => {
  const p = wavegen.player;
  const ref = p.buffers[0].getChannelData(0);
  return wavegen.state.page.stimuli.map((_, i) => {
    const x = p.buffers[i + 1].getChannelData(0);
    let err = 0, sig = 0;
    for (let k = 0; k < ref.length; k++) { const d = x[k] - ref[k]; err += d * d; sig += ref[k] * ref[k]; }
    if (err === 0) return 100;
    return Math.max(0, Math.min(100, Math.round(2.5 * 10 * Math.log10(sig / err))));
  });
}"""

# While the loops play, switching moves gains only: the same sources (started together on one
# frame) keep running, so the position in the sound is kept.
SWITCH_KEEPS_SOURCES = """() => {
  const p = wavegen.player, sources = p.sources, start = p.startTime;
  p.select(1); p.select(2);
  const same = p.sources === sources && p.startTime === start;
  return same && p.current === 2 && sources.length === p.buffers.length;
}"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:  # one browser for the module; each test opens its own page
        yield b


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("systems"), n_items=2, seconds=1.0)


def record(page) -> list[tuple[str, str, bytes, int]]:
    """Every request the page makes, as (url, request body, response body, status), via route()."""
    seen = []

    def handle(route):
        response = route.fetch()
        body = response.body()
        seen.append((route.request.url, route.request.post_data or "", body, response.status))
        route.fulfill(response=response, body=body)

    page.route("**/*", handle)
    return seen


def assert_nothing_named(seen, page, test, test_dir):
    """No system name, item (file) name, stimulus file name or path in any request or response,
    nor in the final page and its storage."""
    forbidden = {*test.systems, "anchor35", "anchor70", "i000_", "i001_", "stimuli/", "test.json"}
    forbidden |= {it.id for it in test.items} | {str(test_dir)}
    texts = [(url, post, body.decode("latin-1")) for url, post, body, _ in seen]
    texts.append(("dom", "", page.content()))
    texts.append(("storage", "", page.evaluate("JSON.stringify(Object.entries(localStorage))")))
    for url, post, body in texts:
        for word in forbidden:
            assert word not in url and word not in post and word not in body, (word, url)
        assert not re.search(r"\.wav\b", url + post + body), url  # no file name of any kind
    for url, _, body, status in seen:
        assert status == 200, (url, status)
        if "/api/" in url and "/api/audio/" not in url:
            keys = set()
            _collect_keys(json.loads(body), keys)
            assert not keys & {"system", "file", "item", "condition", "source"}, (url, keys)


def _collect_keys(value, keys):
    if isinstance(value, dict):
        keys.update(value)
        for v in value.values():
            _collect_keys(v, keys)
    elif isinstance(value, list):
        for v in value:
            _collect_keys(v, keys)


def set_slider(page, index: int, target: int) -> None:
    slider = page.locator(f"#rating-{index}")
    box = slider.bounding_box()
    y = min(box["height"] - 2, max(2, box["height"] * (1 - target / 100)))  # 100 is at the top
    slider.click(position={"x": box["width"] / 2, "y": y})
    value = int(slider.input_value())
    for _ in range(abs(target - value)):
        slider.press("ArrowUp" if value < target else "ArrowDown")
    assert int(slider.input_value()) == target


def next_page(page) -> None:
    token = page.evaluate("wavegen.state.page.token")
    page.click("#next")
    wait_for(page, f"!wavegen.state.page || wavegen.state.page.token !== '{token}'")


def db_rows(test_dir, query, *args):
    db = sqlite3.connect(test_dir / "answers.sqlite")
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def run_analyze(test_dir, out):
    from wavegen.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["listen", "analyze", str(test_dir), "-o", str(out)])
    assert exit_info.value.code in (0, None)
    return json.loads((out / "summary.json").read_text())


def test_mushra_in_chromium(browser, folders, tmp_path):
    ref, systems = folders
    test_dir = tmp_path / "mushra"
    test = prepare_test("mushra", test_dir, systems, reference=ref)
    with served(test_dir) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        seen = record(page)
        page.goto(f"{server.url}/?listener=crowd-worker-1")  # a crowd platform's id in the URL
        page.click("#start")
        page.wait_for_selector("#training")
        page.click("button.play.reference")
        page.click("button.play[data-index='3']")
        wait_for(page, "wavegen.player.current === 3 && wavegen.player.ctx.currentTime > 0.2")
        page.click("#begin")

        given = {}  # stimulus token -> score, as set in the page
        for number in range(2):
            page.wait_for_selector("#page-mushra")
            if number == 1:  # a reload mid-test continues where the listener stopped
                page.reload()
                page.wait_for_selector("#welcome-back")
                assert "page 2 of 2" in page.text_content("#welcome-back")
                page.click("#continue")
                page.wait_for_selector("#page-mushra")
            assert page.text_content("#progress-text") == f"Page {number + 1} of 2"
            scores = page.evaluate(ROBOT_SCORES)
            assert scores.count(100) == 1  # the hidden reference, found by ear (well, by SNR)
            assert page.is_disabled("#next")
            page.keyboard.press("r")  # shortcut: the reference
            assert page.evaluate("wavegen.player.current") == 0
            for i, score in enumerate(scores, 1):
                page.click(f"button.play[data-index='{i}']")
                assert page.evaluate("wavegen.player.current") == i
                set_slider(page, i, score)
            wait_for(page, "wavegen.player.ctx.currentTime > 0 && wavegen.player.position() > 0")
            assert page.evaluate(SWITCH_KEEPS_SOURCES)
            assert page.text_content("#hint") == "" and page.is_enabled("#next")
            tokens = page.evaluate("wavegen.state.page.stimuli")
            given.update(zip(tokens, scores))
            next_page(page)
        page.wait_for_selector("#done")
        code = page.text_content("#completion-code")
        assert_nothing_named(seen, page, test, test_dir)
        assert not errors

    # The answers are in the database, exactly as given.
    (row,) = db_rows(test_dir, "SELECT plan, code, finished FROM listeners WHERE listener = 'crowd-worker-1'")
    plan = json.loads(row[0])
    assert row[1] == code and row[2] is not None
    stored = db_rows(
        test_dir, "SELECT item, condition, system, score FROM ratings WHERE listener = 'crowd-worker-1'"
    )
    assert len(stored) == 2 * 5
    by_condition = {(item, cond): score for item, cond, _, score in stored}
    for token, score in given.items():
        assert by_condition[tuple(plan["audio"][token])] == score
    assert {s for _, _, system, s in stored if system == "reference"} == {100}

    # analyze reproduces the means computed from the raw rows.
    summary = run_analyze(test_dir, tmp_path / "out")
    assert summary["excluded_listeners"] == []
    raw = defaultdict(list)
    for _, _, system, score in stored:
        raw[system].append(score)
    for system, scores in raw.items():
        assert summary["systems"][system]["mean"] == pytest.approx(sum(scores) / len(scores))
        assert summary["systems"][system]["n"] == len(scores)
    assert set(summary["systems"]) == {"reference", "anchor35", "anchor70", *SYSTEMS}


def test_mos_in_chromium(browser, folders, tmp_path):
    ref, systems = folders
    test_dir = tmp_path / "mos"
    test = prepare_test("mos", test_dir, systems, reference=ref, gold=True)
    with served(test_dir) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        seen = record(page)
        page.goto(server.url + "/")  # no id: the server makes a random one, kept in the URL
        page.click("#start")
        page.wait_for_selector("#training")
        listener = page.evaluate("wavegen.state.listener")
        assert f"listener={listener}" in page.url
        page.keyboard.press("2")  # shortcut: training sound 2
        assert page.evaluate("wavegen.player.current") == 1
        page.click("#begin")
        chosen = []
        for number in range(6):  # 2 items x (2 systems + reference)
            page.wait_for_selector("#page-mos")
            assert page.text_content("#progress-text") == f"Page {number + 1} of 6"
            if number % 2:
                page.keyboard.press(" ")  # shortcut: play
            else:
                page.click("button.play.single")
            wait_for(page, "wavegen.player.current === 0 && wavegen.player.position() > 0")
            score = 5 - number % 2
            if number % 3:
                page.keyboard.press(str(score))
            else:
                page.click(f"label:has(#score-{score})")
            assert page.is_checked(f"#score-{score}")
            chosen.append(score)
            next_page(page)
        page.wait_for_selector("#done")
        assert page.text_content("#completion-code")
        assert_nothing_named(seen, page, test, test_dir)
        assert not errors

    stored = db_rows(test_dir, "SELECT system, score FROM ratings WHERE listener = ? ORDER BY page", listener)
    assert [s for _, s in stored] == chosen
    assert sorted(system for system, _ in stored) == sorted(["reference", *SYSTEMS] * 2)
    summary = run_analyze(test_dir, tmp_path / "out")
    assert summary["excluded_listeners"] == []  # every gold item rated 4 or 5
    raw = defaultdict(list)
    for system, score in stored:
        raw[system].append(score)
    for system, scores in raw.items():
        assert summary["systems"][system]["mean"] == pytest.approx(sum(scores) / len(scores))


@pytest.mark.parametrize("kind", ["ab", "abx"])
def test_ab_and_abx_in_chromium(browser, folders, tmp_path, kind):
    """AB (with "no preference") and ABX pages, answered with the keyboard shortcuts; each
    choice is stored against the systems that were played as A, B (and X)."""
    ref, systems = folders
    test_dir = tmp_path / kind
    test = prepare_test(kind, test_dir, systems, reference=ref)
    sounds = "abx" if kind == "abx" else "ab"
    answers = ["1", "2", "3"] if kind == "ab" else ["1", "2"]
    with served(test_dir) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        seen = record(page)
        page.goto(f"{server.url}/?listener=worker-{kind}")
        page.click("#start")
        page.wait_for_selector("#training")
        page.click("#begin")
        chosen = []
        number = 0
        while True:
            page.wait_for_selector(f"#page-{kind}, #done")
            if page.query_selector("#done"):
                break
            assert page.is_disabled("#next")
            for i, key in enumerate(sounds):
                page.keyboard.press(key)
                assert page.evaluate("wavegen.player.current") == i
            assert page.text_content("#hint") == "Choose an answer."
            key = answers[number % len(answers)]
            page.keyboard.press(key)
            chosen.append({"1": "A", "2": "none" if kind == "ab" else "B", "3": "B"}[key])
            assert page.text_content("#hint") == "" and page.is_enabled("#next")
            next_page(page)
            number += 1
        assert page.text_content("#completion-code")
        assert_nothing_named(seen, page, test, test_dir)
        assert not errors

    stored = db_rows(
        test_dir, "SELECT a, b, x, choice FROM choices WHERE listener = ? ORDER BY page", f"worker-{kind}"
    )
    assert [c for *_, c in stored] == chosen and len(chosen) >= 2
    for a, b, x, _ in stored:
        assert a != b and (x in (a, b) if kind == "abx" else x is None)
    summary = run_analyze(test_dir, tmp_path / "out")
    assert summary["excluded_listeners"] == []
