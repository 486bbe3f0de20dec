"""What the browser may send and see: request validation and the page views.

Nothing from a request becomes a path or a query string; ids are checked against a pattern and
then looked up in the listener's plan. A request that does not fit exactly raises
:class:`BadRequest` (-> 4xx) before anything is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from .experiment import MAX_ANSWER
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
    revise: bool = False  # an answer to the previous page, replacing the stored one


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
    optional = {"elapsed_ms"} | ({"comment"} if test.experiment.comments else set())
    check_keys(body, {"listener", "page", fields}, optional)
    page_token = token(body["page"], "page")
    pages = listener.plan["pages"]
    index = next((i for i, p in enumerate(pages) if p["token"] == page_token), None)
    if index is None:
        raise BadRequest("page: unknown for this listener", 404)
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_ANSWER:
        raise BadRequest(f"comment: expected text of at most {MAX_ANSWER} characters", 422)
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
    if comment.strip():
        response["comment"] = comment.strip()
    revise = test.experiment.previous and index == listener.answered - 1
    return Answer(index, page["item"], page["kind"], response, elapsed, ratings, choice, revise)


def state_view(test: ListeningTest, listener: Listener) -> dict:
    """What the browser sees of the listener's progress: tokens only, never names."""
    pages = listener.plan["pages"]
    position = min(listener.answered, len(pages))
    exp = test.experiment
    asking = position >= len(pages) and bool(exp.questionnaire) and not listener.questionnaire_done
    view: dict = {
        "listener": listener.listener,
        "type": test.type,
        "total": len(pages),
        "position": position,
        "done": position >= len(pages) and not asking,
        "questionnaire": asking,
        "sample_rate": test.sample_rate,
    }
    if view["done"]:
        view["code"] = listener.code
        if exp.return_url:
            view["return_url"] = exp.return_url.replace("{code}", quote(listener.code, safe=""))
    elif not asking:
        view["page"] = page_view(pages[position])
    if exp.previous and 0 < position < len(pages) and listener.last_response is not None:
        view["previous"] = page_view(pages[position - 1]) | {
            "answer": answer_view(listener.plan, pages[position - 1], listener.last_response)
        }
    if position == 0:
        view["training"] = listener.plan["training"]
    return view


def page_view(page: dict) -> dict:
    return {k: page[k] for k in ("token", "kind", "reference", "stimuli", "x")}


def answer_view(plan: dict, page: dict, response: dict) -> dict:
    """A stored response (condition ids) as the browser sent it (the page's tokens)."""
    token_of = {plan["audio"][t][1]: t for t in page["stimuli"]}
    view: dict = {"comment": response.get("comment", "")}
    if "ratings" in response:
        scores = {token_of[c]: s for c, s in response["ratings"].items()}
        view |= {"ratings": scores} if page["kind"] == "mushra" else {"score": next(iter(scores.values()))}
    else:
        view["choice"] = response["choice"]
    return view
