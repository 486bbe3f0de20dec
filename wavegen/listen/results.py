"""Answers as rows, from the answers database or from a webMUSHRA result file, and back to CSV.

answers.csv follows webMUSHRA's layouts, so tools written for webMUSHRA read it:

- MUSHRA and MOS (webMUSHRA's mushra.csv): ``session_test_id, listener, trial_id,
  rating_stimulus, rating_score, rating_time, rating_comment`` (``listener`` is the one
  participant column; the stimulus is the system name; the time is ms on the page);
- AB and ABX (webMUSHRA's paired_comparison.csv): ``session_test_id, listener, trial_id,
  choice_reference, choice_non_reference, choice_answer, choice_time, choice_comment`` with the
  systems played as A and B and the answer as a system name, ``none`` (AB: no preference), or
  for ABX ``correct`` / ``incorrect``.

The ``*_comment`` column holds the listener's comment on the page (experiment.comments). The
questionnaire goes to questionnaire.csv: ``session_test_id, listener`` and one column per
question, in the test file's order (webMUSHRA keeps such answers in columns too).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.audio import atomic_path
from ..core.errors import WavegenError
from .spec import DATABASE, load_test
from .store import Store


@dataclass
class Rating:
    listener: str
    item: str
    system: str
    score: float
    time_ms: int | None = None
    comment: str = ""


@dataclass
class Choice:
    listener: str
    item: str
    a: str  # system played as A
    b: str  # system played as B
    x: str | None  # ABX: the system X was
    choice: str  # 'A', 'B' or 'none'
    time_ms: int | None = None
    comment: str = ""

    @property
    def chosen(self) -> str | None:
        return {"A": self.a, "B": self.b}.get(self.choice)


@dataclass
class Results:
    type: str
    test_id: str
    source: str  # where the answers came from
    ratings: list[Rating] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)
    gold: bool = False
    listeners: list[str] = field(default_factory=list)  # everyone with at least one answer
    questions: list[str] = field(default_factory=list)  # question ids, in the test file's order
    questionnaire: dict[str, dict[str, str]] = field(default_factory=dict)  # listener -> id -> answer


def results_from_test(test_dir: str | Path, db_path: str | Path | None = None) -> Results:
    test = load_test(test_dir)
    path = Path(db_path) if db_path else Path(test_dir) / DATABASE
    if not path.is_file():
        raise WavegenError(f"{path}: no answers database; serve the test (`wavegen listen serve`) first")
    store = Store(path, test.test_id)
    try:
        answers = store.rows("answers")
        times = {(a["listener"], a["page"]): a["elapsed_ms"] for a in answers}
        notes = {(a["listener"], a["page"]): json.loads(a["response"]).get("comment", "") for a in answers}
        ratings = [
            Rating(
                r["listener"],
                r["item"],
                r["system"],
                r["score"],
                times.get((r["listener"], r["page"])),
                notes.get((r["listener"], r["page"]), ""),
            )
            for r in store.rows("ratings")
        ]
        choices = [
            Choice(
                c["listener"],
                c["item"],
                c["a"],
                c["b"],
                c["x"],
                c["choice"],
                times.get((c["listener"], c["page"])),
                notes.get((c["listener"], c["page"]), ""),
            )
            for c in store.rows("choices")
        ]
        asked: dict[str, dict[str, str]] = {}
        for q in store.rows("questionnaire"):
            asked.setdefault(q["listener"], {})[q["question"]] = q["answer"]
    finally:
        store.close()
    listeners = sorted({r.listener for r in ratings} | {c.listener for c in choices})
    questions = [q.id for q in test.experiment.questionnaire]
    return Results(
        test.type, test.test_id, str(path), ratings, choices, test.gold, listeners, questions, asked
    )


def results_from_webmushra(path: str | Path) -> Results:
    """Read webMUSHRA's mushra.csv: the first participant column names the listener."""
    path = Path(path)
    if not path.is_file():
        raise WavegenError(f"{path}: no such webMUSHRA result file")
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as err:
        raise WavegenError(f"{path}: not a readable CSV file ({err})") from None
    if not rows:
        raise WavegenError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    needed = ("session_test_id", "trial_id", "rating_stimulus", "rating_score")
    missing = [h for h in needed if h not in header]
    if missing:
        raise WavegenError(f"{path}: not a webMUSHRA mushra.csv (no column {', '.join(missing)})")
    col = {h: header.index(h) for h in (*needed, "rating_time") if h in header}
    participant = list(range(col["session_test_id"] + 1, col["trial_id"]))
    if not participant:
        raise WavegenError(
            f"{path}: no participant column between session_test_id and trial_id to name listeners"
        )
    who = participant[0]
    ratings, seen, tests = [], set(), set()
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise WavegenError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}")
        listener, item, system = (
            row[who].strip(),
            row[col["trial_id"]].strip(),
            row[col["rating_stimulus"]].strip(),
        )
        if not listener or not item or not system:
            raise WavegenError(f"{path}:{number}: empty {header[who]}, trial_id or rating_stimulus")
        try:
            score = float(row[col["rating_score"]])
        except ValueError:
            raise WavegenError(
                f"{path}:{number}: rating_score {row[col['rating_score']]!r} is not a number"
            ) from None
        if not 0 <= score <= 100:
            raise WavegenError(f"{path}:{number}: rating_score {score:g} outside 0-100")
        key = (listener, item, system)
        if key in seen:
            raise WavegenError(
                f"{path}:{number}: {header[who]} {listener!r} rated {system!r} in {item!r} twice"
            )
        seen.add(key)
        tests.add(row[col["session_test_id"]].strip())
        time_ms = None
        if "rating_time" in col:
            try:
                time_ms = int(float(row[col["rating_time"]]))
            except ValueError:
                time_ms = None
        ratings.append(Rating(listener, item, system, score, time_ms))
    if not ratings:
        raise WavegenError(f"{path}: no ratings")
    listeners = sorted({r.listener for r in ratings})
    return Results("mushra", ",".join(sorted(tests)), str(path), ratings, [], False, listeners)


def write_answers_csv(results: Results, path: str | Path) -> Path:
    """All answers (excluded listeners too) in webMUSHRA's column layout; written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if results.type in ("mushra", "mos"):
        writer.writerow(
            [
                "session_test_id",
                "listener",
                "trial_id",
                "rating_stimulus",
                "rating_score",
                "rating_time",
                "rating_comment",
            ]
        )
        for r in results.ratings:
            score = int(r.score) if float(r.score).is_integer() else r.score
            writer.writerow(
                [
                    results.test_id,
                    r.listener,
                    r.item,
                    r.system,
                    score,
                    _ms(r.time_ms),
                    listener_text(r.comment),
                ]
            )
    else:
        writer.writerow(
            [
                "session_test_id",
                "listener",
                "trial_id",
                "choice_reference",
                "choice_non_reference",
                "choice_answer",
                "choice_time",
                "choice_comment",
            ]
        )
        for c in results.choices:
            if c.x is not None:
                answer = "correct" if c.chosen == c.x else "incorrect"
            else:
                answer = c.chosen or "none"
            writer.writerow(
                [
                    results.test_id,
                    c.listener,
                    c.item,
                    c.a,
                    c.b,
                    answer,
                    _ms(c.time_ms),
                    listener_text(c.comment),
                ]
            )
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_questionnaire_csv(results: Results, path: str | Path) -> Path:
    """One row per listener who answered the questionnaire, one column per question."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["session_test_id", "listener", *results.questions])
    for listener, answers in sorted(results.questionnaire.items()):
        row = (listener_text(answers.get(q, "")) for q in results.questions)
        writer.writerow([results.test_id, listener, *row])
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def listener_text(text: str) -> str:
    """What a listener typed, safe in a spreadsheet: text that starts like a formula (= + - @, a
    tab or CR) gets a leading apostrophe (OWASP's CSV-injection advice); a number stays one."""
    if not text or text[0] not in "=+-@\t\r":
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def _ms(value: int | None) -> str:
    return "" if value is None else str(value)
