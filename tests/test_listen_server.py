"""wavegen listen serve as a real uvicorn subprocess: hostile requests, durability under SIGKILL."""

import json
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.listen_helpers import make_systems, served
from wavegen.listen import prepare_test
from wavegen.listen.store import Store


@pytest.fixture(scope="module")
def mushra_dir(tmp_path_factory):
    ref, systems = make_systems(tmp_path_factory.mktemp("systems"), n_items=2, seconds=0.8)
    out = tmp_path_factory.mktemp("tests") / "mushra"
    prepare_test("mushra", out, systems, reference=ref)
    return out


def dump(db_path) -> dict:
    """Every row of every table (the store is opened read-only, beside the running server)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in Store.TABLES}
    finally:
        db.close()


def test_hostile_requests_get_4xx_and_store_nothing(mushra_dir):
    with served(mushra_dir) as server:
        status, state = server.request("POST", "/api/session", {"listener": "honest-1"})
        assert status == 200 and state["position"] == 0
        page = state["page"]
        tok = page["stimuli"][0]
        good = {"listener": "honest-1", "page": page["token"], "ratings": {t: 50 for t in page["stimuli"]}}
        before = dump(mushra_dir / "answers.sqlite")
        assert len(before["listeners"]) == 1 and not before["answers"]

        def bad(method, path, body=None, **kw):
            status, reply = server.request(method, path, body, **kw)
            assert 400 <= status < 500, (method, path, body, status, reply)
            return status

        # unknown ids
        assert bad("GET", "/api/state?listener=nobody") == 404
        assert bad("GET", f"/api/audio/{tok}?listener=nobody") == 404
        assert bad("GET", "/api/audio/0123456789abcdef?listener=honest-1") == 404
        assert bad("POST", "/api/answer", {**good, "page": "0123456789abcdef"}) == 404
        assert bad("POST", "/api/answer", {**good, "listener": "nobody"}) == 404
        other = {**good, "ratings": {**good["ratings"]}}
        other["ratings"].pop(tok)
        other["ratings"]["0123456789abcdef"] = 50
        assert bad("POST", "/api/answer", other) == 422
        # scores out of range, or not integers, or missing
        for score in (101, -1, 50.5, "50", True, None):  # Infinity, NaN: not JSON (a 400, below)
            assert bad("POST", "/api/answer", {**good, "ratings": {**good["ratings"], tok: score}}) == 422
        missing = {**good, "ratings": dict(list(good["ratings"].items())[1:])}
        assert bad("POST", "/api/answer", missing) == 422
        assert bad("POST", "/api/answer", {**good, "elapsed_ms": -5}) == 422
        # path traversal in every parameter
        for path in (
            "/test.json",
            "/answers.sqlite",
            "/stimuli/i000_c1.wav",
            "/static/../test.json",
            "/static/..%2Ftest.json",
            "/static/%2e%2e/%2e%2e/wavegen/listen/app.py",
            "/api/audio/..%2F..%2Ftest.json?listener=honest-1",
            "/api/audio/../../test.json?listener=honest-1",
            "/api/audio/%2e%2e%2fstimuli%2fi000_c1.wav?listener=honest-1",
            "/api/state?listener=..%2F..%2Fetc%2Fpasswd",
            f"/api/audio/{tok}?listener=../../etc/passwd",
        ):
            bad("GET", path)
        assert bad("POST", "/api/session", {"listener": "../../../tmp/x"}) == 400
        assert bad("POST", "/api/answer", {**good, "page": "../../test.json"}) == 404
        assert bad("POST", "/api/answer", {**good, "listener": "../answers.sqlite"}) == 400
        # a 10 MB body, declared or chunked
        assert bad("POST", "/api/answer", raw=b'{"listener": "' + b"x" * 10_000_000 + b'"}') == 413
        assert chunked_post(server.port, "/api/answer", 10_000_000) == 413
        # a missing listener id
        assert bad("GET", "/api/state") == 400
        assert bad("GET", f"/api/audio/{tok}") == 400
        assert bad("POST", "/api/answer", {k: v for k, v in good.items() if k != "listener"}) == 400
        assert bad("POST", "/api/session", {}) == 400
        # malformed requests of every other kind
        assert (
            bad("POST", "/api/answer", raw=b"{not json", headers={"Content-Type": "application/json"}) == 400
        )
        assert bad("POST", "/api/answer", raw=b"[1, 2]") == 400
        assert bad("POST", "/api/answer", {**good, "extra": 1}) == 400
        assert bad("POST", "/api/answer", raw=b"{}", headers={"Content-Type": "text/plain"}) == 415
        assert bad("GET", "/api/state?listener=honest-1&listener=other") == 400
        assert bad("GET", "/api/state?listener=honest-1&debug=1") == 400
        assert bad("GET", "/api/answer") == 405
        assert bad("DELETE", "/api/session") == 405
        # an answer to a later page than the current one (its token read from the database: the
        # browser never sees it)
        plan = json.loads(before["listeners"][0][2])
        later = plan["pages"][1]
        ahead = {"listener": "honest-1", "page": later["token"], "ratings": {t: 50 for t in later["stimuli"]}}
        assert bad("POST", "/api/answer", ahead) == 409
        assert dump(mushra_dir / "answers.sqlite") == before

        # The honest answer is stored once; a retry is acknowledged without a second row; a
        # different answer to the same page is refused.
        status, reply = server.request("POST", "/api/answer", good)
        assert status == 200 and reply["stored"] is True and reply["state"]["position"] == 1
        status, reply = server.request("POST", "/api/answer", good)
        assert status == 200 and reply["stored"] is False
        after = dump(mushra_dir / "answers.sqlite")
        changed = {**good, "ratings": {**good["ratings"], tok: 51}}
        assert bad("POST", "/api/answer", changed) == 409
        assert dump(mushra_dir / "answers.sqlite") == after
        assert len(after["answers"]) == 1 and len(after["ratings"]) == 5


def chunked_post(port: int, path: str, size: int) -> int:
    """POST ``size`` bytes with Transfer-Encoding: chunked (no Content-Length) -> status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < size:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: read what it said
        reply = sock.recv(4096)
    return int(reply.split(b" ", 2)[1])


@pytest.mark.slow  # server subprocesses
def test_sigkill_between_answers_keeps_every_acknowledged_answer(mushra_dir, tmp_path):
    db = tmp_path / "answers.sqlite"
    sent = []
    with served(mushra_dir, "--db", str(db)) as server:
        status, state = server.request("POST", "/api/session", {"listener": "kill-test"})
        for score in (17, 83):
            page = state["page"]
            body = {
                "listener": "kill-test",
                "page": page["token"],
                "ratings": {t: score for t in page["stimuli"]},
            }
            status, reply = server.request("POST", "/api/answer", body)
            assert status == 200 and reply["stored"]  # acknowledged...
            sent.append(body)
            state = reply["state"]
            if len(sent) == 1:
                next_page = state["page"]  # the page the listener was on when the server died
        assert state["done"]  # two items: both pages answered
        server.proc.send_signal(signal.SIGKILL)  # ... then killed without any chance to flush
        server.proc.wait()
    rows = dump(db)
    assert [(r[0], r[1]) for r in rows["answers"]] == [("kill-test", 0), ("kill-test", 1)]
    assert sorted(r[5] for r in rows["ratings"]) == [17] * 5 + [83] * 5

    # Restart on the same database, kill after the FIRST answer of a second listener, restart:
    # they continue on the page they were on, with the same opaque ids.
    with served(mushra_dir, "--db", str(db)) as server:
        status, state = server.request("POST", "/api/session", {"listener": "kill-test"})
        assert state["done"] and state["position"] == 2 and state["code"]
        status, state = server.request("POST", "/api/session", {"listener": "second"})
        page = state["page"]
        body = {"listener": "second", "page": page["token"], "ratings": {t: 60 for t in page["stimuli"]}}
        status, reply = server.request("POST", "/api/answer", body)
        assert status == 200
        next_page = reply["state"]["page"]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    with served(mushra_dir, "--db", str(db)) as server:
        status, state = server.request("GET", "/api/state?listener=second")
        assert status == 200 and state["position"] == 1 and state["page"] == next_page
        status, audio = server.request("GET", f"/api/audio/{next_page['stimuli'][0]}?listener=second")
        assert status == 200 and audio[:4] == b"RIFF"
        body = {
            "listener": "second",
            "page": next_page["token"],
            "ratings": {t: 70 for t in next_page["stimuli"]},
        }
        status, reply = server.request("POST", "/api/answer", body)
        assert status == 200 and reply["state"]["done"]
    assert len(dump(db)["answers"]) == 4


@pytest.mark.slow  # server subprocesses
def test_a_taken_port_or_unknown_host_is_one_line_and_nothing_served(mushra_dir):
    """uvicorn's own bind error came after a "serving ..." line, in its own format, with exit 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, message in (
            (["--port", str(port)], f"127.0.0.1:{port}: cannot listen there"),
            (["--host", "999.1.1.1"], "--host 999.1.1.1: cannot listen there"),
        ):
            r = subprocess.run(
                [sys.executable, "-m", "wavegen", "listen", "serve", str(mushra_dir), *args],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 1 and "serving" not in r.stdout, (r.stdout, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"wavegen: error: {message}"), r.stderr


def test_store_pragmas_and_foreign_test(mushra_dir, tmp_path):
    from wavegen.core.errors import WavegenError

    store = Store(tmp_path / "a.sqlite", "lt-one")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    with pytest.raises(WavegenError, match="holds answers to test lt-one"):
        Store(tmp_path / "a.sqlite", "lt-two")


def test_experimenter_pages_over_http(tmp_path):
    """Consent before registration, page comments, one revision of the previous page, the
    questionnaire's checks, and the completion code only after it, with the return URL."""
    from wavegen.listen.experiment import parse_experiment

    ref, systems = make_systems(tmp_path / "systems", n_items=2, seconds=0.5)
    exp = parse_experiment(
        {
            "consent": "Please agree.",
            "comments": True,
            "previous": True,
            "questionnaire": [
                {"id": "age", "type": "number", "label": "Age", "min": 18, "max": 99},
                {"id": "device", "type": "choice", "label": "Device", "options": ["Phone", "Laptop"]},
                {"id": "easy", "type": "likert", "label": "Easy", "required": False},
            ],
            "return_url": "https://example.org/done?cc={code}",
        },
        "test",
    )
    test_dir = tmp_path / "ab"
    prepare_test("ab", test_dir, systems, reference=ref, items_per_listener=1, experiment=exp)
    with served(test_dir, "--completion-code", "C0DE/1") as server:
        status, config = server.request("GET", "/api/config")
        assert status == 200 and config["consent"] == "Please agree." and config["texts"]["next"] == "Next"
        assert [q["id"] for q in config["questionnaire"]] == ["age", "device", "easy"]
        # No consent, no listener: nothing is stored.
        for body in ({"listener": "p1"}, {"listener": "p1", "consent": False}, {"listener": None}):
            assert server.request("POST", "/api/session", body)[0] == 403
        assert dump(test_dir / "answers.sqlite")["listeners"] == []
        status, state = server.request("POST", "/api/session", {"listener": "p1", "consent": True})
        assert status == 200 and "previous" not in state
        # A returning listener needs no new consent.
        assert server.request("POST", "/api/session", {"listener": "p1"})[0] == 200

        def answer(state, choice, comment=None, page=None):
            body = {"listener": "p1", "page": page or state["page"]["token"], "choice": choice}
            if comment is not None:
                body["comment"] = comment
            return server.request("POST", "/api/answer", body)

        first = state["page"]["token"]
        assert answer(state, "A", "x" * 2001)[0] == 422  # comments are bounded
        status, reply = answer(state, "A", "  sounds alike  ")
        assert status == 200
        state = reply["state"]
        assert state["previous"]["token"] == first
        assert state["previous"]["answer"] == {"choice": "A", "comment": "sounds alike"}
        # The previous page may be answered again (it replaces the old answer); older ones not.
        status, reply = answer(state, "B", "changed my mind", page=first)
        assert status == 200 and reply["state"]["position"] == 1
        status, reply = answer(state, "A")
        state = reply["state"]
        assert answer(state, "none", page=first)[0] == 409
        while not state["questionnaire"]:
            assert "code" not in state
            state = answer(state, "none")[1]["state"]
        rows = dump(test_dir / "answers.sqlite")
        assert [r[-1] for r in rows["choices"]][:2] == ["B", "A"]
        assert json.loads(rows["answers"][0][4])["comment"] == "changed my mind"
        assert rows["listeners"][0][-1] is None  # not finished before the questionnaire

        def asked(answers):
            return server.request("POST", "/api/questionnaire", {"listener": "p1", "answers": answers})

        for wrong in (
            {"device": "Phone"},  # age is required
            {"age": 17, "device": "Phone"},
            {"age": "34", "device": "Phone"},
            {"age": 34, "device": "Tablet"},
            {"age": 34, "device": "Phone", "easy": "6"},
            {"age": 34, "device": "Phone", "shoe": "42"},
        ):
            assert asked(wrong)[0] == 422, wrong
        status, reply = asked({"age": 34, "device": "Laptop", "easy": ""})
        assert status == 200 and reply["state"]["done"]
        assert reply["state"]["return_url"] == "https://example.org/done?cc=C0DE%2F1"
        assert asked({"age": 34, "device": "Laptop", "easy": ""})[1]["stored"] is False  # a retry
        assert asked({"age": 35, "device": "Laptop"})[0] == 409
        rows = dump(test_dir / "answers.sqlite")
        assert rows["questionnaire"] == [("p1", "age", "34"), ("p1", "device", "Laptop"), ("p1", "easy", "")]
        assert rows["listeners"][0][-1] is not None


def test_json_a_browser_cannot_send_is_a_400_that_stores_nothing(mushra_dir):
    """A lone surrogate ("\\ud800") in any string was a 500 (SQLite cannot encode it), and
    NaN/Infinity (not JSON, but Python's parser takes them) reached the answer checks."""
    with served(mushra_dir) as server:
        status, state = server.request("POST", "/api/session", {"listener": "forger-1"})
        assert status == 200
        page = state["page"]
        ratings = ", ".join(f'"{t}": 50' for t in page["stimuli"])
        before = dump(mushra_dir / "answers.sqlite")
        body = f'"listener": "forger-1", "page": "{page["token"]}", "ratings": {{{ratings}}}'
        surrogate = "\\ud800"  # as JSON escapes it
        for inner in (
            body + f', "{surrogate}": 1',  # an unknown field, named in the reply: was a 500
            body.replace("forger-1", "forger-" + surrogate),
            body.replace(": 50}", ": Infinity}"),
            body.replace(": 50}", ": NaN}"),
        ):
            raw = "{" + inner + "}"
            status, reply = server.request("POST", "/api/answer", raw=raw.encode())
            assert status == 400 and reply["error"].startswith("body: "), (raw, status, reply)
        assert dump(mushra_dir / "answers.sqlite") == before


def test_a_questionnaire_number_must_be_finite():
    """1e400 parses as an infinite float: it was stored as "inf" for a number question without bounds."""
    from wavegen.listen.experiment import check_answers, parse_experiment

    exp = parse_experiment({"questionnaire": [{"id": "age", "type": "number", "label": "Age"}]}, "t")
    assert check_answers(exp, {"age": 34}, 5) == {"age": "34"}
    for value in (float("inf"), -float("inf"), float("nan")):
        with pytest.raises(ValueError, match="age: expected a number"):
            check_answers(exp, {"age": value}, 5)
