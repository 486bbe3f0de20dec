"""Audio I/O: formats become float32 mono in [-1, 1]; bad files raise a clear error."""

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from wavegen.core.audio import atomic_path, read_audio, read_npy, resample, write_audio, write_npy
from wavegen.core.errors import WavegenError


def tone(sr=16000, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    "subtype,fmt,ext",
    [
        ("PCM_16", "WAV", "wav"),
        ("PCM_24", "WAV", "wav"),
        ("PCM_U8", "WAV", "wav"),
        ("FLOAT", "WAV", "wav"),
        ("PCM_16", "FLAC", "flac"),
    ],
)
def test_formats_read_as_float32_in_range(tmp_path, subtype, fmt, ext):
    x = tone()
    path = tmp_path / f"x.{ext}"
    sf.write(path, x, 16000, subtype=subtype, format=fmt)
    wav, sr = read_audio(path)
    assert sr == 16000 and wav.dtype == np.float32 and wav.ndim == 1
    assert np.abs(wav).max() <= 1.0
    tol = {"PCM_U8": 1e-2, "FLOAT": 1e-7}.get(subtype, 1e-4)
    np.testing.assert_allclose(wav, x, atol=tol)


def test_int16_full_scale_maps_to_minus_one(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.array([-32768, 0, 32767], dtype=np.int16), 8000, subtype="PCM_16")
    wav, _ = read_audio(path)
    assert wav[0] == -1.0 and wav[1] == 0.0 and 0.9999 < wav[2] < 1.0


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(freq=300), tone(freq=500)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    wav, _ = read_audio(path)
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-7)


def test_resampling_on_read_keeps_the_tone(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(sr=48000, seconds=1.0, freq=1000), 48000, subtype="FLOAT")
    wav, sr = read_audio(path, sample_rate=22050)
    assert sr == 22050 and abs(len(wav) - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(wav[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 22050 / len(wav[2000:-2000])
    assert abs(peak_hz - 1000) < 5
    np.testing.assert_allclose(resample(wav, 22050, 22050), wav)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(WavegenError, match=r"empty\.wav: empty file"):
        read_audio(path)


def test_header_only_file_has_no_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(WavegenError, match="nosamples.wav"):
        read_audio(path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(WavegenError, match=r"notes\.wav: not readable as audio"):
        read_audio(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WavegenError, match=r"cut\.wav: truncated"):
        read_audio(path)


def test_non_finite_samples(tmp_path):
    x = tone()
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(WavegenError, match=r"nan\.wav: audio contains NaN"):
        read_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(WavegenError, match="no such audio file"):
        read_audio(tmp_path / "nope.wav")


def test_write_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "out" / "y.wav"
    write_audio(path, tone() * 3, 16000)  # clipped, not wrapped
    wav, sr = read_audio(path)
    assert sr == 16000 and np.abs(wav).max() <= 1.0 and sf.info(path).subtype == "PCM_16"
    assert [p.name for p in path.parent.iterdir()] == ["y.wav"]


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    path = tmp_path / "keep.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bin"]
    with pytest.raises(WavegenError, match="NaN"):
        write_audio(tmp_path / "bad.wav", np.array([np.nan]), 16000)
    assert not (tmp_path / "bad.wav").exists()


# ---- failed writes (#10 items 6 and 7) ---------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_audio(tmp_path / "a.wav", tone(), 16000)
        write_npy(tmp_path / "a.npy", np.zeros(3, np.float32))
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for name in ("a.wav", "a.npy", "a.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_directory_as_output_is_refused_without_leftovers(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(WavegenError, match="is a directory"):
        write_npy(tmp_path / "out", np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not list((tmp_path / "out").iterdir())


def test_a_failed_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(WavegenError, match=r"x\.npy: cannot write"):
        write_npy(tmp_path / "x.npy", np.zeros(3))
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_one_error_naming_the_file(tmp_path, monkeypatch):
    """A simulated ENOSPC while writing: a WavegenError naming the target, no temporary left."""

    def full(f, array):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(WavegenError) as err:
        write_npy(tmp_path / "m.npy", np.zeros(3))
    assert str(err.value).startswith(f"{tmp_path / 'm.npy'}: cannot write")
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_one_error_naming_the_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root from writing (see the tmpfs tests)")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(WavegenError, match=r"a\.wav: cannot write.*Permission denied"):
            write_audio(folder / "a.wav", tone(), 16000)
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


FILE_SIZE_LIMITED = """
import resource, signal, sys
import numpy as np
from wavegen.core.audio import write_audio
from wavegen.core.errors import WavegenError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_audio(sys.argv[1], np.zeros(16000, np.float32), 16000)
except WavegenError as err:
    print(err)
"""


def test_a_failed_wav_write_names_the_os_reason(tmp_path):
    """A real failed write (the file size limit, as a full disk would): libsndfile said only
    "System error."; the WAV write now says what the OS said, like every other writer."""
    r = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED, str(tmp_path / "big.wav")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line == f"{tmp_path / 'big.wav'}: cannot write: File too large [EFBIG]", line
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_on_a_wav_write_says_so(tmp_path, monkeypatch):
    """ENOSPC from the low-level write of a WAV: the same words as for .npy and .wgc files."""
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Full(f) if "w" in mode and str(file).endswith(".tmp") else f

    monkeypatch.setattr("builtins.open", opener)
    with pytest.raises(WavegenError) as err:
        write_audio(tmp_path / "a.wav", tone(), 16000)
    assert str(err.value) == (
        f"{tmp_path / 'a.wav'}: cannot write: No space left on device [ENOSPC]; "
        "free some space or write elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_device_or_fifo_as_output_is_refused_and_left_alone(tmp_path):
    """Found by the #18 hunt: as root, `decompress -o /dev/full` renamed its WAV over the device
    node (exit 0; /dev/full became a regular file). A FIFO stands in for a device here."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for write in (lambda p: write_audio(p, tone(), 16000), lambda p: write_npy(p, np.zeros(3))):
        with pytest.raises(WavegenError) as err:
            write(fifo)
        assert str(err.value) == f"{fifo}: not a regular file (a FIFO); expected the name of a file to write"
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_forged_npy_header_is_refused_before_numpy_allocates_it(tmp_path):
    """A .npy whose header claims (80, 10**12) float32 (291 TiB) with 12 bytes of data: read_npy
    (behind synthesize --mel and preprocess --mels) names the file and the mismatch in one line
    instead of numpy trying the allocation; a real array still reads back exactly."""
    from numpy.lib import format as npy_format

    forged = tmp_path / "forged.npy"
    with open(forged, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (80, 10**12)})
        f.write(b"\0" * 12)
    with pytest.raises(WavegenError) as err:
        read_npy(forged)
    message = str(err.value)
    assert message.startswith(f"{forged}: not a readable .npy array (its header says shape (80, 10000")
    assert "the file holds 12" in message and "\n" not in message
    real = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_npy(tmp_path / "real.npy", real)
    assert np.array_equal(read_npy(tmp_path / "real.npy"), real)


def test_synthesize_reads_mel_files_through_the_checked_reader(tmp_path):
    from numpy.lib import format as npy_format

    from wavegen.inference.synthesize import load_mel_file

    forged = tmp_path / "tts.npy"
    with open(forged, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (80, 10**12)})
    with pytest.raises(WavegenError, match="its header says shape"):
        load_mel_file(forged)
