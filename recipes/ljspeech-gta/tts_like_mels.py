"""Stand-in for a TTS model's teacher-forced mels: the real mels of a corpus, smoothed over time
and frequency as a TTS model's predictions are (a regression loss on log-mels averages away the
fine structure: harmonics blur across bins, onsets across frames).

    python tts_like_mels.py CORPUS OUTDIR [--corpus-kind ljspeech] [--preset tacotron2]
        [--sigma-frames 1.5] [--sigma-bins 1.0] [--espnet-layout]

Writes OUTDIR/<utterance id>.npy from the untrimmed audio, as a TTS model run teacher-forced on
the corpus would: (n_mels, T) in the preset's log base, or with --espnet-layout (T, n_mels)
log10 as ESPnet2 writes them (wavegen preprocess --mels reads both). Use a real TTS model's
mels instead where you have one: see README.md beside this file.
"""

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from wavegen.core.audio import read_audio, write_npy
from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.data.corpora import read_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--corpus-kind", default="ljspeech")
    parser.add_argument("--preset", default="tacotron2")
    parser.add_argument("--sigma-frames", type=float, default=1.5, help="Gaussian blur over time, in frames")
    parser.add_argument("--sigma-bins", type=float, default=1.0, help="Gaussian blur over mel bins")
    parser.add_argument("--espnet-layout", action="store_true", help="(T, n_mels) log10 files")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    floor = np.log(preset.floor) if preset.log_base == "e" else np.log10(preset.floor)
    for utt in read_corpus(args.corpus_kind, args.corpus):
        wav, _ = read_audio(utt.path, sample_rate=preset.sample_rate)
        mel = mel_spectrogram(wav, preset)  # (n_mels, 1 + len // hop), the preset's log
        smooth = np.maximum(gaussian_filter(mel, sigma=(args.sigma_bins, args.sigma_frames)), floor)
        if args.espnet_layout:
            smooth = (smooth / np.log(10) if preset.log_base == "e" else smooth).T
        write_npy(args.outdir / f"{utt.id}.npy", smooth.astype(np.float32))
    print(f"{args.outdir}: TTS-like mels of {args.corpus}")


if __name__ == "__main__":
    main()
