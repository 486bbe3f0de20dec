"""The experimenter's test file (YAML): the pages around the ratings, and every word on them.

``wavegen listen prepare --config test.yaml`` reads it, checks it, and keeps it in test.json
under ``"experiment"`` (so the served test never reads the YAML again)::

    language: en          # the shipped wording: en (default) or de (lang/<language>.yaml)
    texts:                # any wording key -> your words (the keys: wavegen/listen/lang/en.yaml)
      title: Vocoder listening test
    consent: |            # shown first; the listener must agree. Refusing stores nothing.
      This study is run by ... Your answers are stored anonymously ...
    calibration: true     # a volume page before the training: set a comfortable level, keep it
    comments: true        # an optional comment box on every rating page
    previous: true        # a "previous page" button: the last answered page may be changed
    questionnaire:        # after the last page, before the completion code
      - {id: age, type: number, label: Your age, required: true, min: 18, max: 120}
      - {id: device, type: choice, label: You listened with, options: [Headphones, Loudspeakers]}
      - {id: easy, type: likert, label: The test was easy, required: false}  # 5 points, the wording's
      - {id: remarks, type: text, label: Anything else?}
    return_url: https://app.prolific.com/submissions/complete?cc={code}   # {code}: completion code

Every key is optional; an unknown key is an error naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..core.errors import WavegenError

LANGUAGES = ("en", "de")
QUESTION_TYPES = ("text", "number", "choice", "likert")
QUESTION_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
MAX_TEXT = 4000  # characters of one wording entry, consent text or question label
MAX_ANSWER = 2000  # characters of one free-text answer or page comment
MAX_QUESTIONS = 100  # questions in the questionnaire
MAX_OPTIONS = 100  # options of one choice or likert question
KEYS = ("language", "texts", "consent", "calibration", "comments", "previous", "questionnaire", "return_url")


@dataclass
class Question:
    id: str
    type: str  # text | number | choice | likert
    label: str
    required: bool = True
    options: list[str] = field(default_factory=list)  # choice; likert (empty: the wording's scale)
    min: float | None = None  # number
    max: float | None = None


@dataclass
class Experiment:
    language: str = "en"
    texts: dict[str, str | list[str]] = field(default_factory=dict)  # overrides of the wording
    consent: str | None = None
    calibration: bool = False
    comments: bool = False
    previous: bool = False
    questionnaire: list[Question] = field(default_factory=list)
    return_url: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def wording(self) -> dict:
        """English, then the language's file, then the experimenter's texts (each overriding)."""
        words = shipped_wording("en")
        if self.language != "en":
            words.update(shipped_wording(self.language))
        words.update(self.texts)
        return words


def shipped_wording(language: str) -> dict:
    text = (resources.files("wavegen.listen") / "lang" / f"{language}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_experiment(path: str | Path) -> Experiment:
    """Read and check the experimenter's YAML file."""
    path = Path(path)
    if not path.is_file():
        raise WavegenError(f"{path}: no such test file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WavegenError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise WavegenError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    return parse_experiment(data or {}, str(path))


def parse_experiment(data, where: str) -> Experiment:
    """A dict (from the YAML or from test.json) -> Experiment; every field checked."""
    if not isinstance(data, dict):
        raise WavegenError(f"{where}: expected a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise WavegenError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; expected {', '.join(KEYS)}"
        )
    exp = Experiment()
    language = data.get("language", "en")
    if language not in LANGUAGES:
        raise WavegenError(f"{where}: language {language!r}: expected one of {', '.join(LANGUAGES)}")
    exp.language = language
    english = shipped_wording("en")
    texts = data.get("texts") or {}
    if not isinstance(texts, dict):
        raise WavegenError(f"{where}: texts: expected a mapping of wording keys to words")
    for key, value in texts.items():
        if key not in english:
            raise WavegenError(f"{where}: texts.{key}: not a wording key (see wavegen/listen/lang/en.yaml)")
        if isinstance(english[key], list):
            fixed = key in ("scale", "likert")  # one label per point of the scale
            ok = isinstance(value, list) and value and (not fixed or len(value) == len(english[key]))
            if not ok or not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in value):
                size = f"{len(english[key])} strings" if fixed else "strings (paragraphs)"
                raise WavegenError(f"{where}: texts.{key}: expected a list of {size}")
        elif not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
            raise WavegenError(f"{where}: texts.{key}: expected a string of 1-{MAX_TEXT} characters")
    exp.texts = dict(texts)
    consent = data.get("consent")
    if consent is not None and (not isinstance(consent, str) or not consent.strip() or len(consent) > 20000):
        raise WavegenError(f"{where}: consent: expected the consent text (1-20000 characters)")
    exp.consent = consent.strip() if consent else None
    for flag in ("calibration", "comments", "previous"):
        value = data.get(flag, False)
        if not isinstance(value, bool):
            raise WavegenError(f"{where}: {flag}: expected true or false, got {value!r}")
        setattr(exp, flag, value)
    questions = data.get("questionnaire") or []
    if not isinstance(questions, list) or len(questions) > MAX_QUESTIONS:
        raise WavegenError(f"{where}: questionnaire: expected a list of at most {MAX_QUESTIONS} questions")
    seen: set[str] = set()
    for n, raw in enumerate(questions):
        q = _question(raw, f"{where}: questionnaire[{n}]")
        if q.id in seen:
            raise WavegenError(f"{where}: questionnaire[{n}]: id {q.id!r} given twice")
        seen.add(q.id)
        exp.questionnaire.append(q)
    url = data.get("return_url")
    if url is not None and (not isinstance(url, str) or not re.fullmatch(r"https?://[^\s<>\"]{1,2000}", url)):
        raise WavegenError(f"{where}: return_url: expected an http(s) URL ({{code}} is the completion code)")
    exp.return_url = url
    return exp


def _question(raw, where: str) -> Question:
    if not isinstance(raw, dict):
        raise WavegenError(f"{where}: expected a mapping with id, type, label")
    unknown = sorted(set(raw) - {"id", "type", "label", "required", "options", "min", "max"})
    if unknown:
        raise WavegenError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    qid, kind, label = raw.get("id"), raw.get("type"), raw.get("label")
    if not isinstance(qid, str) or not QUESTION_ID.match(qid):
        raise WavegenError(
            f"{where}: id: expected a letter then up to 39 letters, digits or '_', got {qid!r}"
        )
    if kind not in QUESTION_TYPES:
        raise WavegenError(f"{where}: type {kind!r}: expected one of {', '.join(QUESTION_TYPES)}")
    if not isinstance(label, str) or not 0 < len(label) <= MAX_TEXT:
        raise WavegenError(f"{where}: label: expected the question's text")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise WavegenError(f"{where}: required: expected true or false")
    options = raw.get("options", [])
    if kind in ("choice", "likert"):
        if not isinstance(options, list) or not all(
            isinstance(o, str) and 0 < len(o) <= MAX_TEXT for o in options
        ):
            raise WavegenError(f"{where}: options: expected a list of strings of 1-{MAX_TEXT} characters")
        if len(options) > MAX_OPTIONS:
            raise WavegenError(f"{where}: options: at most {MAX_OPTIONS}, got {len(options)}")
        if kind == "choice" and len(options) < 2:
            raise WavegenError(f"{where}: options: a choice needs at least two options")
        if kind == "likert" and len(options) == 1:  # none: the wording's scale
            raise WavegenError(f"{where}: options: a likert scale needs at least two points")
        if len(set(options)) != len(options):
            raise WavegenError(f"{where}: options: an option is given twice")
    elif raw.get("options"):
        raise WavegenError(f"{where}: options: only for choice and likert questions")
    low, high = raw.get("min"), raw.get("max")
    for name, value in (("min", low), ("max", high)):
        if value is not None and (
            kind != "number" or isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise WavegenError(f"{where}: {name}: only a number, for number questions")
        if value is not None and not math.isfinite(value):  # YAML's .nan and .inf
            raise WavegenError(f"{where}: {name}: expected a finite number, got {value!r}")
    if low is not None and high is not None and low > high:
        raise WavegenError(f"{where}: min {low} is above max {high}")
    return Question(qid, kind, label, required, list(options), low, high)


def check_answers(exp: Experiment, answers, likert_points: int) -> dict[str, str]:
    """The questionnaire answers a browser sent -> {question id: answer as text}; ValueError
    names the first bad one. Optional questions may be missing or empty."""
    if not isinstance(answers, dict):
        raise ValueError("answers: expected an object")
    known = {q.id: q for q in exp.questionnaire}
    unknown = set(answers) - set(known)
    if unknown:
        raise ValueError(f"answers: unknown question(s) {', '.join(sorted(unknown)[:5])}")
    out: dict[str, str] = {}
    for q in exp.questionnaire:
        value = answers.get(q.id)
        if value is None or value == "":
            if q.required:
                raise ValueError(f"{q.id}: required")
            out[q.id] = ""
            continue
        if q.type == "text":
            if not isinstance(value, str) or len(value) > MAX_ANSWER:
                raise ValueError(f"{q.id}: expected text of at most {MAX_ANSWER} characters")
            out[q.id] = value
        elif q.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{q.id}: expected a number")
            if (q.min is not None and value < q.min) or (q.max is not None and value > q.max):
                raise ValueError(f"{q.id}: expected a number from {q.min} to {q.max}")
            out[q.id] = f"{value:g}"
        else:
            options = q.options or [str(i) for i in range(1, likert_points + 1)]
            if q.type == "likert" and not q.options:
                # the wording's scale: the answer is its point, 1 (first label) .. N
                if value not in options:
                    raise ValueError(f"{q.id}: expected one of 1-{likert_points}")
            elif value not in options:
                raise ValueError(f"{q.id}: expected one of the options")
            out[q.id] = value
    return out
