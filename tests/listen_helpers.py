"""Helpers for the listening-test tests: stimulus folders, a real server, a real browser.

``make_systems`` writes a reference folder and two systems' folders of short broadband
speech-like WAVs (one system at another rate and length, so prepare must resample and cut; the
other is Griffin-Lim from the reference's mel). ``served`` runs ``wavegen listen serve`` as a
real uvicorn subprocess on a free 127.0.0.1 port. ``chromium`` launches Debian's Chromium via
Playwright: without it the browser tests skip, unless WAVEGEN_REQUIRE_BROWSER=1 (set by
.ci/run), where they fail.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavegen.core.features import mel_spectrogram
from wavegen.inference.griffinlim import griffin_lim

RATE = 22050
SYSTEMS = ("sysalpha", "griffinlim")  # distinctive names: the tests search for them in the page
ITEMS = ("utt_one", "utt_two", "utt_three", "utt_four", "utt_five")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("WAVEGEN_REQUIRE_BROWSER") == "1"


def voice(seconds: float, sr: int, f0: float, seed: int) -> np.ndarray:
    """Broadband speech-like audio: harmonics up to Nyquist with a syllable envelope, plus noise
    bursts (so the anchors' low-pass filters have something to remove)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * t))) / sr
    harmonics = sum(np.sin(k * phase + rng.uniform(0, 6.28)) / k for k in range(1, int(sr / 2 / f0)))
    envelope = 0.3 + 0.7 * np.sin(2 * np.pi * 2.5 * t) ** 2
    bursts = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.1 * t) > 0.7)
    wav = harmonics * envelope + 0.3 * bursts
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


def make_systems(root: Path, n_items: int = 2, seconds: float = 1.2) -> tuple[Path, dict[str, Path]]:
    """root/reference, root/sysalpha (16 kHz, 50 ms longer, noisy), root/griffinlim -> (ref, systems)."""
    from wavegen.core.audio import resample

    ref, alpha, gl = root / "reference", root / "sysalpha", root / "griffinlim"
    for d in (ref, alpha, gl):
        d.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(ITEMS[:n_items]):
        wav = voice(seconds, RATE, 110 + 40 * n, seed=n)
        sf.write(ref / f"{name}.wav", wav, RATE, subtype="PCM_16")
        noisy = np.concatenate([wav, wav[: int(0.05 * RATE)]])
        noisy = noisy + 0.03 * np.random.default_rng(100 + n).standard_normal(len(noisy)).astype(np.float32)
        sf.write(alpha / f"{name}.wav", resample(noisy, RATE, 16000), 16000, subtype="FLOAT")
        sf.write(
            gl / f"{name}.wav", griffin_lim(mel_spectrogram(wav, "tacotron2"), "tacotron2", n_iter=8), RATE
        )
    return ref, {"sysalpha": alpha, "griffinlim": gl}


# ---- the server --------------------------------------------------------------------------------


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: list[str]):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        """-> (status, parsed JSON or raw bytes). ``path`` is sent exactly as given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            payload = response.read()
            if response.getheader("content-type", "").startswith("application/json"):
                return response.status, json.loads(payload)
            return response.status, payload
        finally:
            conn.close()


@contextlib.contextmanager
def served(test_dir: Path, *extra: str):
    """``wavegen listen serve TEST_DIR --port 0`` in a subprocess -> Server (killed on exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavegen", "listen", "serve", str(test_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    found = threading.Event()
    port: list[int] = []

    def reader():
        for line in proc.stdout:
            log.append(line)
            match = re.search(r"^serving .* at http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port.append(int(match.group(1)))
                found.set()

    threading.Thread(target=reader, daemon=True).start()
    try:
        if not found.wait(60):
            raise RuntimeError("the server did not start:\n" + "".join(log))
        yield Server(proc, port[0], log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- the browser -------------------------------------------------------------------------------


def unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"browser required (WAVEGEN_REQUIRE_BROWSER=1) but unavailable: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        unavailable(f"playwright is not installed ({err})")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as err:  # noqa: BLE001 - any launch failure means "no browser"
            unavailable(f"{CHROMIUM} did not start: {str(err).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


def wait_for(page, expression: str, timeout: float = 20.0):
    """Poll a JS expression until truthy. (The app's CSP forbids eval, which Playwright's own
    wait_for_function needs; page.evaluate goes through the DevTools protocol instead.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {expression}")
