"""Listening tests for vocoders: prepare the stimuli, serve the test, analyse the answers.

- ``prepare``: vocoder output folders -> a blinded, loudness-matched test dir (MUSHRA per
  ITU-R BS.1534-3 with hidden reference and anchors, MOS per ITU-T P.800 ACR, AB, ABX);
- ``app``: the web app that runs it (Starlette on uvicorn), answers in SQLite (``store``);
- ``analyze``: post-screening, intervals, paired tests with Holm correction, plots, report.

Modules: spec (test.json), stimuli (loudness, anchors), prepare, plan (per-listener order and
opaque ids), store (SQLite), answers (request validation, page views), app (routes), static/
(the page), results (answer rows, webMUSHRA CSV), stats, analyze, report.
"""

from .analyze import analyze, summarize
from .prepare import prepare_test
from .spec import ListeningTest, load_test

__all__ = ["ListeningTest", "analyze", "load_test", "prepare_test", "summarize"]
