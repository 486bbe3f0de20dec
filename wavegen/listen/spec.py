"""``TEST_DIR/test.json``: what a prepared listening test is, read and validated in one place.

Layout of a test dir::

    test.json            this file's schema (versioned), written last by ``prepare``
    stimuli/*.wav        loudness-matched stimuli, all at one rate and, per item, of one length
    answers.sqlite       the listeners' answers (``serve`` creates it; see store.py)

test.json::

    {"format": "wavegen-listening-test", "version": 1, "type": "mushra" | "mos" | "ab" | "abx",
     "test_id", "sample_rate", "loudness_lufs", "seed", "items_per_listener", "gold",
     "systems": [NAME, ...], "experiment": {the experimenter's pages, see experiment.py},
     "items": [{"id", "conditions": [{"id", "system", "file", "gain_db", "source",
                                      "source_lufs", "peak_dbfs"}]}]}

The hidden reference and the anchors are conditions with the systems ``reference``,
``anchor35`` and ``anchor70``. Condition ids (``c1``, ``c2``, ...) are assigned in a shuffled
order per item, so an id says nothing about its system; the server never shows them anyway.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import WavegenError
from .experiment import Experiment, parse_experiment

FORMAT = "wavegen-listening-test"
VERSION = 1
TEST_FILE = "test.json"
STIMULI = "stimuli"
DATABASE = "answers.sqlite"
TYPES = ("mushra", "mos", "ab", "abx")
REFERENCE = "reference"
ANCHORS = {"anchor35": 3500.0, "anchor70": 7000.0}  # system name -> low-pass cut-off (Hz)
RESERVED = (REFERENCE, *ANCHORS)
MAX_MUSHRA_CONDITIONS = 12  # ITU-R BS.1534-3: at most 12 conditions on one page
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONDITION_ID = re.compile(r"^c[0-9]{1,3}$")
STIMULUS_FILE = re.compile(r"^stimuli/[A-Za-z0-9_.-]{1,100}\.wav$")


@dataclass
class Condition:
    id: str  # c1, c2, ... unique within its item
    system: str  # a --sys name, or reference / anchor35 / anchor70
    file: str  # stimuli/<name>.wav, relative to the test dir
    gain_db: float = 0.0  # gain applied to reach the test's loudness
    source: str = ""  # the file the stimulus was made from
    source_lufs: float | None = None  # its loudness before the gain (after resampling and cutting)
    peak_dbfs: float | None = None  # sample peak of the stimulus as written


@dataclass
class Item:
    id: str  # the matched file name without its extension
    conditions: list[Condition]

    def condition(self, condition_id: str) -> Condition:
        for c in self.conditions:
            if c.id == condition_id:
                return c
        raise KeyError(condition_id)

    def by_system(self, system: str) -> Condition | None:
        return next((c for c in self.conditions if c.system == system), None)


@dataclass
class ListeningTest:
    type: str
    test_id: str
    sample_rate: int
    loudness_lufs: float
    seed: int
    systems: list[str]
    items: list[Item]
    items_per_listener: int | None = None  # None: every listener rates every item
    gold: bool = False  # MOS: the reference trials are attention checks (expected >= 4)
    experiment: Experiment = field(default_factory=Experiment)  # consent, questionnaire, wording...
    format: str = FORMAT
    version: int = VERSION
    extra: dict = field(default_factory=dict)  # anything else prepare recorded (lengths, ...)

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)

    def to_json(self) -> str:
        data = asdict(self)
        extra = data.pop("extra")
        head = {"format": data.pop("format"), "version": data.pop("version")}
        return json.dumps({**head, **data, **extra}, indent=2, ensure_ascii=False) + "\n"


def check_system_name(name: str, what: str = "system name") -> str:
    if not SYSTEM_NAME.match(name):
        raise WavegenError(
            f"{what} {name!r}: expected 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED:
        raise WavegenError(f"{what} {name!r} is reserved for the hidden reference and the anchors")
    return name


def load_test(test_dir: str | Path) -> ListeningTest:
    """Read and validate ``test_dir/test.json``; every stimulus file must exist."""
    test_dir = Path(test_dir)
    path = test_dir / TEST_FILE
    if not path.is_file():
        raise WavegenError(f"{path}: no test.json; make the test with `wavegen listen prepare` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise WavegenError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WavegenError(f"{path}: not a wavegen listening test (format must be {FORMAT!r})")
    if data.get("version") != VERSION:
        raise WavegenError(f"{path}: version {data.get('version')!r}, this wavegen reads version {VERSION}")
    kind = data.get("type")
    if kind not in TYPES:
        raise WavegenError(f"{path}: type {kind!r}, expected one of {', '.join(TYPES)}")
    for key, typ in (("test_id", str), ("sample_rate", int), ("seed", int), ("systems", list)):
        if not isinstance(data.get(key), typ):
            raise WavegenError(f"{path}: {key} missing or not a {typ.__name__}")
    items_raw = data.get("items")
    if not isinstance(items_raw, list) or not items_raw:
        raise WavegenError(f"{path}: items must be a non-empty list")
    items, seen = [], set()
    for n, raw in enumerate(items_raw):
        where = f"{path}: items[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or raw["id"] in seen:
            raise WavegenError(f"{where}: needs a unique string id")
        seen.add(raw["id"])
        conds = raw.get("conditions")
        if not isinstance(conds, list) or not conds:
            raise WavegenError(f"{where}: conditions must be a non-empty list")
        parsed, ids = [], set()
        for m, c in enumerate(conds):
            cw = f"{where}.conditions[{m}]"
            if not isinstance(c, dict):
                raise WavegenError(f"{cw}: expected an object")
            cid, system, file = c.get("id"), c.get("system"), c.get("file")
            if not isinstance(cid, str) or not CONDITION_ID.match(cid) or cid in ids:
                raise WavegenError(f"{cw}: id must be a unique c<number>, got {cid!r}")
            ids.add(cid)
            if not isinstance(system, str) or not SYSTEM_NAME.match(system):
                raise WavegenError(f"{cw}: bad system {system!r}")
            # The file comes from test.json, never from a request; still, it must stay inside.
            if not isinstance(file, str) or not STIMULUS_FILE.match(file) or ".." in file:
                raise WavegenError(f"{cw}: file must be stimuli/<name>.wav, got {file!r}")
            if not (test_dir / file).is_file():
                raise WavegenError(f"{test_dir / file}: stimulus missing (the test dir is incomplete)")
            known = {k: c[k] for k in ("gain_db", "source", "source_lufs", "peak_dbfs") if k in c}
            parsed.append(Condition(id=cid, system=system, file=file, **known))
        systems = [c.system for c in parsed]
        if len(set(systems)) != len(systems):
            raise WavegenError(f"{where}: a system appears twice")
        items.append(Item(id=raw["id"], conditions=parsed))
    known_keys = {
        "format",
        "version",
        "type",
        "test_id",
        "sample_rate",
        "loudness_lufs",
        "seed",
        "systems",
        "items",
        "items_per_listener",
        "gold",
        "experiment",
    }
    per_listener = data.get("items_per_listener")
    if per_listener is not None and (not isinstance(per_listener, int) or per_listener < 1):
        raise WavegenError(f"{path}: items_per_listener must be a positive integer or null")
    return ListeningTest(
        type=kind,
        test_id=data["test_id"],
        sample_rate=data["sample_rate"],
        loudness_lufs=float(data.get("loudness_lufs", -23.0)),
        seed=data["seed"],
        systems=list(data["systems"]),
        items=items,
        items_per_listener=per_listener,
        gold=bool(data.get("gold", False)),
        experiment=parse_experiment(data.get("experiment") or {}, f"{path}: experiment"),
        extra={k: v for k, v in data.items() if k not in known_keys},
    )
