"""The answers database (SQLite): every answer is on disk before the listener hears "stored".

WAL journal with ``synchronous=FULL``: a commit returns only after the WAL is fsync'ed, so an
answer acknowledged to the browser survives a killed server or a power cut. One connection
behind a lock serves the whole app (answers are tiny and rare; SQLite has one writer anyway).

Tables::

    meta(key, value)                      test_id of the test this database belongs to
    listeners(listener, seq, plan, code, created, finished)
    answers(listener, page, item, kind, response, elapsed_ms, created)   one row per page
    ratings(listener, page, item, condition, system, score)              MUSHRA and MOS
    choices(listener, page, item, a, b, x, choice)                       AB and ABX
    questionnaire(listener, question, answer)                            the post-test questions

A page's comment (experiment.comments) is part of its ``response``. With a consent page, a
listener is registered only after agreeing (``created`` is that moment); refusing stores nothing.

A page's answer, its ratings or choice and the listener's ``finished`` time are written in one
transaction: all of it is stored, or none.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import WavegenError

TABLES = ("meta", "listeners", "answers", "ratings", "choices", "questionnaire")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listeners (
    listener TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,      -- arrival order, 0-based (balanced item subsets)
    plan TEXT NOT NULL,               -- JSON, see plan.py
    code TEXT NOT NULL,               -- completion code shown on the last page
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS answers (
    listener TEXT NOT NULL REFERENCES listeners (listener),
    page INTEGER NOT NULL,
    item TEXT NOT NULL,
    kind TEXT NOT NULL,
    response TEXT NOT NULL,           -- JSON: the answer in condition ids
    elapsed_ms INTEGER,               -- time on the page, as the browser measured it
    created REAL NOT NULL,
    PRIMARY KEY (listener, page)
);
CREATE TABLE IF NOT EXISTS ratings (
    listener TEXT NOT NULL,
    page INTEGER NOT NULL,
    item TEXT NOT NULL,
    condition TEXT NOT NULL,
    system TEXT NOT NULL,
    score INTEGER NOT NULL,
    PRIMARY KEY (listener, page, condition)
);
CREATE TABLE IF NOT EXISTS choices (
    listener TEXT NOT NULL,
    page INTEGER NOT NULL,
    item TEXT NOT NULL,
    a TEXT NOT NULL,                  -- system played as A
    b TEXT NOT NULL,                  -- system played as B
    x TEXT,                           -- ABX: the system X was; NULL for AB
    choice TEXT NOT NULL,             -- 'A', 'B' or 'none' (AB: no preference)
    PRIMARY KEY (listener, page)
);
CREATE TABLE IF NOT EXISTS questionnaire (
    listener TEXT NOT NULL REFERENCES listeners (listener),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,             -- as text; '' for an optional question left empty
    PRIMARY KEY (listener, question)
);
"""


@dataclass
class Listener:
    listener: str
    seq: int
    plan: dict
    code: str
    finished: float | None
    answered: int  # pages answered so far
    questionnaire_done: bool = False
    last_response: dict | None = None  # the stored answer to page answered - 1


class Conflict(Exception):
    """An answer for a page that was answered differently, or is not the current page."""


class Store:
    TABLES = TABLES

    def __init__(self, path: str | Path, test_id: str):
        self.path = Path(path)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'test_id'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('test_id', ?)", (test_id,))
            elif row[0] != test_id:
                raise WavegenError(
                    f"{self.path}: holds answers to test {row[0]}, not {test_id} "
                    "(was the test prepared again?)"
                )
        except sqlite3.DatabaseError as err:
            raise WavegenError(f"{self.path}: not a usable answers database ({err})") from None

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ---- listeners ----------------------------------------------------------------------------

    def listener(self, listener: str) -> Listener | None:
        with self.lock:
            return self._listener(listener)

    def register(
        self, listener: str, make_plan: Callable[[int], dict], make_code: Callable[[], str]
    ) -> Listener:
        """The listener, created with the plan for the next arrival number if new."""
        with self.lock:
            found = self._listener(listener)
            if found is not None:
                return found
            with self._transaction():
                seq = self.db.execute("SELECT COUNT(*) FROM listeners").fetchone()[0]
                self.db.execute(
                    "INSERT INTO listeners (listener, seq, plan, code, created) VALUES (?, ?, ?, ?, ?)",
                    (listener, seq, json.dumps(make_plan(seq)), make_code(), time.time()),
                )
            return self._listener(listener)

    def _listener(self, listener: str) -> Listener | None:
        row = self.db.execute(
            "SELECT listener, seq, plan, code, finished FROM listeners WHERE listener = ?", (listener,)
        ).fetchone()
        if row is None:
            return None
        answered = self.db.execute("SELECT COUNT(*) FROM answers WHERE listener = ?", (listener,)).fetchone()[
            0
        ]
        asked = self.db.execute(
            "SELECT COUNT(*) FROM questionnaire WHERE listener = ?", (listener,)
        ).fetchone()
        last = self.db.execute(
            "SELECT response FROM answers WHERE listener = ? AND page = ?", (listener, answered - 1)
        ).fetchone()
        return Listener(
            row[0],
            row[1],
            json.loads(row[2]),
            row[3],
            row[4],
            answered,
            asked[0] > 0,
            last and json.loads(last[0]),
        )

    # ---- answers ------------------------------------------------------------------------------

    def save(
        self,
        listener: str,
        page: int,
        item: str,
        kind: str,
        response: dict,
        elapsed_ms: int | None,
        ratings: list[tuple[str, str, int]] = (),
        choice: tuple[str, str, str | None, str] | None = None,
        revise: bool = False,
        finishes: bool = True,
    ) -> bool:
        """Store the answer to page ``page``; True if stored now, False if it already was.

        ``ratings``: (condition, system, score) rows; ``choice``: (a, b, x, choice).
        The same answer sent twice (a retry after a lost acknowledgement) is accepted once;
        a different answer to an answered page, or one to a page past the current one, raises
        :class:`Conflict`. ``revise``: the test has a "previous page" button, and a new answer to
        the last answered page replaces the old one (in one transaction). ``finishes``: the last
        page finishes the listener (False when a questionnaire follows).
        """
        text = json.dumps(response, sort_keys=True)
        with self.lock:
            row = self.db.execute(
                "SELECT response FROM answers WHERE listener = ? AND page = ?", (listener, page)
            ).fetchone()
            found = self._listener(listener)
            replace = False
            if row is not None:
                if row[0] == text:
                    return False
                if not (revise and found.answered == page + 1 and found.finished is None):
                    raise Conflict(f"page {page} was already answered differently")
                replace = True
            elif found is None or found.answered != page:
                raise Conflict(f"page {page} is not the current page")
            now = time.time()
            with self._transaction():
                if replace:
                    for table in ("answers", "ratings", "choices"):
                        self.db.execute(
                            f"DELETE FROM {table} WHERE listener = ? AND page = ?", (listener, page)
                        )
                self.db.execute(
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (listener, page, item, kind, text, elapsed_ms, now),
                )
                self.db.executemany(
                    "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                    [(listener, page, item, cond, system, score) for cond, system, score in ratings],
                )
                if choice is not None:
                    self.db.execute(
                        "INSERT INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)", (listener, page, item, *choice)
                    )
                if finishes and page + 1 == len(found.plan["pages"]):
                    self.db.execute("UPDATE listeners SET finished = ? WHERE listener = ?", (now, listener))
            return True

    def save_questionnaire(self, listener: str, answers: dict[str, str]) -> bool:
        """Store the questionnaire (after the last page) and finish the listener; True if stored
        now, False if these very answers already were."""
        with self.lock:
            found = self._listener(listener)
            if found is None or found.answered < len(found.plan["pages"]):
                raise Conflict("the questionnaire comes after the last page")
            if found.questionnaire_done:
                rows = self.db.execute(
                    "SELECT question, answer FROM questionnaire WHERE listener = ?", (listener,)
                ).fetchall()
                if dict(rows) == answers:
                    return False
                raise Conflict("the questionnaire was already answered differently")
            with self._transaction():
                self.db.executemany(
                    "INSERT INTO questionnaire VALUES (?, ?, ?)",
                    [(listener, q, a) for q, a in answers.items()],
                )
                self.db.execute(
                    "UPDATE listeners SET finished = ? WHERE listener = ?", (time.time(), listener)
                )
            return True

    def _transaction(self):
        return _Transaction(self.db)

    # ---- reading, for analysis ----------------------------------------------------------------

    def rows(self, table: str) -> list[dict]:
        """All rows of ``ratings``, ``choices``, ``answers`` or ``listeners`` as dicts."""
        if table not in TABLES:
            raise ValueError(table)
        with self.lock:
            cursor = self.db.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
