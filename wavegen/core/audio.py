"""Audio I/O: read anything soundfile reads as float32 mono, resample, write atomically.

Every problem with a file (missing, empty, unreadable, truncated, non-finite) raises
:class:`~wavegen.core.errors.WavegenError` with the file name and what is wrong.
"""

from __future__ import annotations

import errno
import io
import math
import os
import secrets
import stat
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.lib import format as npy_format

from .errors import OutputError, WavegenError

# Containers libsndfile reads (soundfile.available_formats()), by their usual suffixes.
AUDIO_SUFFIXES = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aiff .aif .aifc .au .snd .caf .w64 .rf64".split()
)


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono in [-1, 1].

    Integer PCM is scaled to [-1, 1); several channels are averaged. If ``sample_rate`` is given
    and differs from the file's, the audio is resampled (soxr, high quality).

    Returns:
        (wav, sr): ``wav`` has shape (T,), ``sr`` is the rate of the returned audio.
    """
    path = Path(path)
    if not path.is_file():
        raise WavegenError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise WavegenError(f"{path}: empty file (0 bytes), expected audio")
    declared, present = _riff_data_sizes(path)
    if present < declared:
        raise WavegenError(
            f"{path}: truncated audio (header declares {declared} data bytes, file holds {present})"
        )
    try:
        info = sf.info(str(path))
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as err:
        raise WavegenError(f"{path}: not readable as audio ({_short(err)})") from None
    # libsndfile quietly returns fewer frames than the header promises for a truncated file.
    if info.frames > 0 and len(wav) < info.frames:
        raise WavegenError(
            f"{path}: truncated audio (header says {info.frames} frames, file holds {len(wav)})"
        )
    if len(wav) == 0:
        raise WavegenError(f"{path}: audio has no samples")
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if not np.isfinite(wav).all():
        raise WavegenError(f"{path}: audio contains NaN or infinite samples")
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav, sr


def audio_sample_rate(path: str | os.PathLike) -> int:
    """The sample rate of an audio file (its header only), with :func:`read_audio`'s errors."""
    path = Path(path)
    if not path.is_file():
        raise WavegenError(f"{path}: no such audio file")
    try:
        return int(sf.info(str(path)).samplerate)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as err:
        raise WavegenError(f"{path}: not readable as audio ({_short(err)})") from None


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample (T,) float audio with soxr's high-quality filter (librosa's default)."""
    if orig_sr == target_sr:
        return wav
    import soxr

    return soxr.resample(wav, orig_sr, target_sr, quality="HQ").astype(np.float32)


def write_audio(path: str | os.PathLike, wav, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write (T,) float audio atomically: to a temporary name in the same folder, then rename.

    Values are clipped to [-1, 1]; the default is 16-bit PCM WAV.
    """
    path = Path(path)
    write_files({path: audio_writer(path, wav, sample_rate, subtype)})
    return path


def audio_writer(path: str | os.PathLike, wav, sample_rate: int, subtype: str = "PCM_16") -> Callable:
    """What :func:`write_audio` writes, as a writer for :func:`write_files` (checked now)."""
    path = Path(path)
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.isfinite(wav).all():
        raise WavegenError(f"{path}: refusing to write audio with NaN or infinite samples")
    wav = np.clip(wav, -1.0, 1.0)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower(), "WAV")

    def write(f) -> None:
        # Encoded in memory, then one plain write: libsndfile reports a failed write (a full
        # disk, a file size limit) as "System error." without errno; a Python write raises
        # the OSError, which atomic_path words like every other write.
        buffer = io.BytesIO()
        sf.write(buffer, wav, sample_rate, subtype=subtype, format=fmt)
        f.write(buffer.getbuffer())

    return write


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A .npy array, never unpickled, its header checked against the file's size first (a forged
    header claiming terabytes is refused before numpy allocates them); WavegenError naming the file."""
    try:
        problem = _npy_size_problem(Path(path))
        if problem:
            raise WavegenError(f"{path}: not a readable .npy array ({problem})")
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise WavegenError(f"{path}: not a readable .npy array ({str(err).splitlines()[0]})") from None


def _npy_size_problem(path: Path) -> str | None:
    """Why a .npy's header does not fit the file's size (a forged or truncated file), before
    np.load allocates what the header claims; None if it fits. ValueError: not a .npy."""
    with open(path, "rb") as f:
        version = npy_format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            return None  # np.load says what it makes of other versions
        read = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}[version]
        shape, _, dtype = read(f, max_header_size=10_000)
        if dtype.hasobject:
            return None  # np.load refuses it (allow_pickle=False)
        expected = math.prod(shape) * dtype.itemsize
        held = os.fstat(f.fileno()).st_size - f.tell()
    if expected != held:
        return f"its header says shape {shape} of {dtype}, {expected} bytes; the file holds {held}"
    return None


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` as .npy atomically (temporary name, fsync, rename)."""
    path = Path(path)
    write_files({path: npy_writer(array)})
    return path


def npy_writer(array: np.ndarray) -> Callable:
    """What :func:`write_npy` writes, as a writer for :func:`write_files`."""

    def write(f) -> None:
        # Serialised in memory, then one plain write: numpy's own file writer reports a full disk
        # as "N requested and M written" without errno; a Python write raises OSError(ENOSPC).
        buffer = io.BytesIO()
        np.save(buffer, array)
        f.write(buffer.getbuffer())

    return write


def write_files(writers: dict[Path, Callable]) -> None:
    """Write several files all or nothing: ``writers`` maps each path to a function that writes
    its bytes to an open binary file. Each goes to a temporary name first; the renames happen
    only once every file is written, so a failure (a full disk on the second) leaves none.

    Raises:
        OutputError: naming the path whose write failed (see :class:`atomic_path`).
    """
    with ExitStack() as stack:
        temporaries = [(path, stack.enter_context(atomic_path(path)), w) for path, w in writers.items()]
        for path, tmp, write in temporaries:
            try:
                with open(tmp, "wb") as f:
                    write(f)
            except OSError as err:  # named here: the innermost atomic_path would name its own path
                raise OutputError(write_error_message(path, err)) from None


def refuse_overwriting(output: str | os.PathLike, protected: list[tuple[str, str | os.PathLike]]) -> None:
    """A one-line error when writing ``output`` would replace something this command reads or
    writes: ``protected`` holds (what, path) pairs such as ("the input", "a.wav"). A folder
    (a run dir, an exported model) protects every file already inside it."""
    out = Path(output).resolve()
    for what, path in protected:
        target = Path(path).resolve()
        if out == target or (target.is_dir() and out.is_relative_to(target) and out.exists()):
            raise WavegenError(f"{output}: would overwrite {what} ({path}); choose another output")


class atomic_path:
    """Context manager giving a temporary path beside ``path``; renamed over it on success.

    The temporary file is created like any new file (mode 0o666 less the umask), and given that
    mode again if the writer changed it (safetensors writes 0600), so the result has the
    permissions ``open(path, "w")`` would give it. On an exception in the block, or if
    the final fsync or rename fails, the temporary file is removed and ``path`` is untouched. An
    ``OSError`` on the way (no space left, permission denied, read-only file system, ``path`` a
    folder, ...) becomes an :class:`~wavegen.core.errors.OutputError` naming ``path``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory; expected the name of a file to write")
        kind = _special_kind(self.path)
        if kind is not None:  # the rename would replace a device node (as root) or a FIFO
            raise OutputError(
                f"{self.path}: not a regular file ({kind}); expected the name of a file to write"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = _new_temporary(self.path)
        except OSError as err:
            raise OutputError(write_error_message(self.path, err)) from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                with open(self.tmp, "rb+") as f:
                    mode = 0o666 & ~current_umask()
                    if os.fstat(f.fileno()).st_mode & 0o777 != mode:  # a writer that made it 0600
                        os.fchmod(f.fileno(), mode)
                    os.fsync(f.fileno())
                os.replace(self.tmp, self.path)
                return
            except BaseException as err:  # a failed rename, or a signal right here
                exc = err
        message = write_error_message(self.path, exc) if isinstance(exc, OSError) else None
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:  # e.g. the folder became unwritable: the error below matters more
            pass
        if message is not None:
            raise OutputError(message) from None
        if exc_type is None:
            raise exc


def _special_kind(path: Path) -> str | None:
    """What ``path`` is if it exists and is neither a regular file nor a folder, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def _new_temporary(path: Path) -> Path:
    """Create an empty ``.NAME.XXXXXXXX.tmp`` beside ``path`` (mode 0o666 less the umask).

    tempfile.mkstemp would make it 0o600, and the rename would hand that mode to the output.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def current_umask() -> int:
    """This process's umask, read without changing it where /proc allows (os.umask cannot)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error_message(path: str | os.PathLike, err: OSError) -> str:
    """One line for a failed write of ``path``: '<path>: cannot write: <reason> [ENOSPC]'."""
    if err.errno in (errno.EEXIST, errno.ENOTDIR):  # a file where a folder of the path should be
        for parent in Path(path).parents:
            if parent.is_file():
                return f"{path}: cannot write: {parent} is a file, not a folder"
    reason = err.strerror or str(err) or type(err).__name__
    code = f" [{errno.errorcode[err.errno]}]" if err.errno in errno.errorcode else ""
    hint = {
        errno.ENOSPC: "; free some space or write elsewhere",
        errno.EDQUOT: "; free some space or write elsewhere",
        errno.EACCES: "; check the folder's permissions or write elsewhere",
        errno.EPERM: "; check the folder's permissions or write elsewhere",
        errno.EROFS: "; write elsewhere",
    }.get(err.errno, "")
    return f"{path}: cannot write: {reason}{code}{hint}"


def _riff_data_sizes(path: Path) -> tuple[int, int]:
    """(declared, present) bytes of a RIFF/WAVE file's data chunk; (0, 0) for other files.

    libsndfile silently shortens a truncated WAV to the bytes present, so the header's promise
    is checked here. A size of 0 or 0xFFFFFFFF (streamed writes) promises nothing.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0, 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if length in (0, 0xFFFFFFFF):
                    return 0, 0
                return length, size - pos - 8
            pos += 8 + length + (length & 1)
    return 0, 0


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
