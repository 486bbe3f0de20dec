"""What the browser may send and see: request validation and the page views.

Nothing from a request becomes a path or a query string; ids are checked against a pattern and
then looked up in the listener's plan. A request that does not fit exactly raises
:class:`BadRequest` (-> 4xx) before anything is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .spec import ListeningTest
from .store import Listener

LISTENER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN = re.compile(r"^[0-9a-f]{16}$")
SCORE_RANGE = {"mushra": (0, 100), "mos": (1, 5)}
CHOICES = {"ab": ("A", "B", "none"), "abx": ("A", "B")}
MAX_ELAPSED_MS = 24 * 3600 * 1000


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    page: int
    item: str
    kind: str
    response: dict  # in condition ids, as stored
    elapsed_ms: int | None
    ratings: list[tuple[str, str, int]]  # (condition, system, score)
    choice: tuple[str, str, str | None, str] | None  # (a system, b system, x system, 'A'|'B'|'none')


def listener_id(value) -> str:
    if not isinstance(value, str) or not LISTENER_ID.match(value):
        raise BadRequest("listener: expected 1-64 letters, digits, '_' or '-'")
    return value


def token(value, what: str) -> str:
    if not isinstance(value, str) or not TOKEN.match(value):
        raise BadRequest(f"{what}: not a valid id", 404)
    return value


def check_keys(body: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    missing, unknown = required - set(body), set(body) - required - optional
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(sorted(missing))}")
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown)[:5])}")


def integer(value, low: int, high: int, what: str) -> int:
    # bool is an int in Python; JSON true is not a score.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{what}: expected an integer from {low} to {high}", 422)
    return value


def parse_answer(test: ListeningTest, listener: Listener, body: dict) -> Answer:
    """Validate an answer body against the listener's plan -> what to store."""
    fields = {"mushra": "ratings", "mos": "score", "ab": "choice", "abx": "choice"}[test.type]
    check_keys(body, {"listener", "page", fields}, {"elapsed_ms"})
    page_token = token(body["page"], "page")
    pages = listener.plan["pages"]
    index = next((i for i, p in enumerate(pages) if p["token"] == page_token), None)
    if index is None:
        raise BadRequest("page: unknown for this listener", 404)
    page = pages[index]
    elapsed = body.get("elapsed_ms")
    if elapsed is not None:
        elapsed = integer(elapsed, 0, MAX_ELAPSED_MS, "elapsed_ms")
    audio = listener.plan["audio"]
    item = test.item(page["item"])

    def system(tok: str) -> tuple[str, str]:
        condition = audio[tok][1]
        return condition, item.condition(condition).system

    ratings: list[tuple[str, str, int]] = []
    choice = None
    if test.type in ("mushra", "mos"):
        low, high = SCORE_RANGE[test.type]
        if test.type == "mushra":
            given = body["ratings"]
            if not isinstance(given, dict) or set(given) != set(page["stimuli"]):
                raise BadRequest("ratings: expected one score for each stimulus of the page", 422)
            scores = {tok: integer(given[tok], low, high, "score") for tok in page["stimuli"]}
        else:
            scores = {page["stimuli"][0]: integer(body["score"], low, high, "score")}
        for tok, score in scores.items():
            condition, name = system(tok)
            ratings.append((condition, name, score))
        response = {"ratings": {c: s for c, _, s in sorted(ratings)}}
    else:
        picked = body["choice"]
        if picked not in CHOICES[test.type]:
            raise BadRequest(f"choice: expected one of {', '.join(CHOICES[test.type])}", 422)
        (a_cond, a_sys), (b_cond, b_sys) = (system(t) for t in page["stimuli"])
        x_cond, x_sys = system(page["x"]) if page["x"] else (None, None)
        choice = (a_sys, b_sys, x_sys, picked)
        response = {"a": a_cond, "b": b_cond, "x": x_cond, "choice": picked}
    return Answer(index, page["item"], page["kind"], response, elapsed, ratings, choice)


def state_view(test: ListeningTest, listener: Listener) -> dict:
    """What the browser sees of the listener's progress: tokens only, never names."""
    pages = listener.plan["pages"]
    position = min(listener.answered, len(pages))
    view: dict = {
        "listener": listener.listener,
        "type": test.type,
        "total": len(pages),
        "position": position,
        "done": position >= len(pages),
        "sample_rate": test.sample_rate,
    }
    if view["done"]:
        view["code"] = listener.code
    else:
        page = pages[position]
        view["page"] = {k: page[k] for k in ("token", "kind", "reference", "stimuli", "x")}
    if position == 0:
        view["training"] = listener.plan["training"]
    return view
