"""One listener's test: which items, in which order, under which opaque ids.

A plan is made once, when a listener first arrives, and stored with them (store.py), so a
reload or a server restart shows the same pages in the same order. The order comes from a
generator seeded by the test's seed and the listener id; the ids the browser sees (page and
stimulus tokens) are random, one per stimulus slot, so nothing in a request names a system, a
file or even a condition, and the same condition on two pages has two different tokens.

Plan (JSON-able)::

    {"items": [item ids, in the listener's order],
     "training": {"reference": TOKEN | None, "stimuli": [TOKEN, ...]},
     "pages": [{"token", "item", "kind", "reference": TOKEN | None, "stimuli": [TOKEN, ...],
                "x": TOKEN | None}],
     "audio": {TOKEN: [item id, condition id]}}
"""

from __future__ import annotations

import itertools
import random
import secrets

from .spec import REFERENCE, ListeningTest

TOKEN_BYTES = 8  # 16 hex characters


def assigned_items(test: ListeningTest, seq: int) -> list[str]:
    """The item ids of the ``seq``-th listener (0-based arrival order).

    With ``items_per_listener`` N of M items, listeners take consecutive windows of N from one
    seeded permutation of the items, wrapping around: after any number of listeners, the
    counts of two items differ by at most one, so every item is rated about equally often.
    """
    ids = [it.id for it in test.items]
    n = test.items_per_listener
    if n is None or n >= len(ids):
        return ids
    permutation = ids[:]
    random.Random(f"{test.seed}:subsets").shuffle(permutation)
    start = seq * n
    return [permutation[(start + j) % len(ids)] for j in range(n)]


def make_plan(test: ListeningTest, listener: str, seq: int) -> dict:
    rng = random.Random(f"{test.seed}:listener:{listener}")
    items = assigned_items(test, seq)
    rng.shuffle(items)
    audio: dict[str, list[str]] = {}

    def token(item_id: str | None = None, condition_id: str | None = None) -> str:
        t = secrets.token_hex(TOKEN_BYTES)
        if item_id is not None:
            audio[t] = [item_id, condition_id]
        return t

    pages = []
    for kind, item_id, ref, stimuli, x in _trials(test, items, rng):
        pages.append(
            {
                "token": token(),
                "item": item_id,
                "kind": kind,
                "reference": token(item_id, ref) if ref else None,
                "stimuli": [token(item_id, c) for c in stimuli],
                "x": token(item_id, x) if x else None,
            }
        )
    # Training: one item (seeded choice), every condition, unlabelled and unrated.
    train = test.item(rng.choice([it.id for it in test.items]))
    train_conditions = [c.id for c in train.conditions]
    rng.shuffle(train_conditions)
    ref = train.by_system(REFERENCE)
    training = {
        "reference": token(train.id, ref.id) if ref and test.type in ("mushra", "abx") else None,
        "stimuli": [token(train.id, c) for c in train_conditions],
    }
    return {"items": items, "training": training, "pages": pages, "audio": audio}


def _trials(test: ListeningTest, items: list[str], rng: random.Random):
    """(kind, item id, open reference, [stimuli], x) per page, in the listener's order."""
    if test.type == "mushra":
        for item_id in items:
            item = test.item(item_id)
            conditions = [c.id for c in item.conditions]
            rng.shuffle(conditions)  # the hidden reference among them, anywhere
            yield "mushra", item_id, item.by_system(REFERENCE).id, conditions, None
        return
    trials = []
    for item_id in items:
        item = test.item(item_id)
        if test.type == "mos":
            trials += [("mos", item_id, None, [c.id], None) for c in item.conditions]
        elif test.type == "ab":
            for a, b in itertools.combinations(item.conditions, 2):
                pair = [a.id, b.id]
                rng.shuffle(pair)  # which one is "A" is random per listener and trial
                trials.append(("ab", item_id, None, pair, None))
        else:  # abx: the reference against each system; X is one of the two
            ref = item.by_system(REFERENCE)
            for c in item.conditions:
                if c.system == REFERENCE:
                    continue
                pair = [ref.id, c.id]
                rng.shuffle(pair)
                trials.append(("abx", item_id, None, pair, rng.choice(pair)))
    rng.shuffle(trials)
    yield from trials
