#!/usr/bin/env bash
# LJSpeech vocoder fine-tuned on a TTS model's teacher-forced (GTA) mels, in numbered stages:
#   0 base       a base model: recipes/ljspeech's stages 1-2 (preprocess, train) into
#                $workdir-base and $run_dir-base, unless --base MODEL names a trained one
#                (export folder, run dir or checkpoint)
#   1 tts mels   the TTS model's mels: with --mels DIR, yours (README.md beside
#                this file gives the teacher-forcing commands of ESPnet2, Coqui TTS and NVIDIA
#                Tacotron 2); without it, a stand-in: the real mels smoothed over time and
#                frequency as TTS predictions are (tts_like_mels.py), into $workdir-tts-mels
#   2 preprocess the corpus with --mels: the audio, and the TTS mels aligned to it, in $workdir
#   3 fine-tune  wavegen train --init-from the base model into $run_dir
#   4 evaluate   base and fine-tuned model, both vocoding the TTS mels of the test split
#
# Usage: recipes/ljspeech-gta/run.sh [--base MODEL] [--mels DIR] [--stage N] [--stop-stage M]
#            [--workdir DIR] [--run-dir DIR] [--corpus PATH] [--set key=value ...]
#            [--max-steps N] [--dry-run]
#   --base MODEL     start from this trained model (skips stage 0)
#   --mels DIR       the TTS model's teacher-forced mels, <utterance id>.npy (skips stage 1)
#   --corpus PATH    the LJSpeech corpus (default: data/LJSpeech-1.1, see recipes/ljspeech stage 0)
#   --set key=value  override a recipe value in every stage (the model shape must match the base)
#   --max-steps N    steps of stage 0's base training and of stage 3's fine-tune
# e.g.   recipes/ljspeech-gta/run.sh --base runs/ljspeech --mels exp/espnet_gta --stage 2
#        recipes/ljspeech-gta/run.sh --dry-run
set -euo pipefail

recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "${recipe_dir}/../stages.sh"
root="$(project_root)"
config="${recipe_dir}/config.yaml"
data_dir="${root}/data"
workdir="${root}/exp/ljspeech-gta"
run_dir="${root}/runs/ljspeech-gta"
base=""
mels_dir=""

rest=()  # this recipe's own options first; the shared ones go to parse_stage_options
while [ $# -gt 0 ]; do
    case "$1" in
        --base|--mels)
            if [ $# -lt 2 ]; then
                echo "$0: $1 needs a value (try --help)" >&2
                exit 2
            fi
            if [ "$1" = --base ]; then base="$2"; else mels_dir="$2"; fi
            shift 2 ;;
        *) rest+=("$1"); shift ;;
    esac
done
parse_stage_options ${rest[@]+"${rest[@]}"}
corpus_dir="${corpus:-${data_dir}/LJSpeech-1.1}"
base_workdir="${workdir}-base"  # stage 0's feature cache (of the audio) and run dir
base_run="${base:-${run_dir}-base}"
mels="${mels_dir:-${workdir}-tts-mels}"
steps=()
if [ -n "${max_steps}" ]; then
    steps=(--max-steps "${max_steps}")
fi
# The python of the wavegen on PATH (the stand-in of stage 1 imports wavegen), else python3.
wavegen_bin="$(command -v wavegen || true)"
python_bin=python3
if [ -n "${wavegen_bin}" ] && [ -x "$(dirname "${wavegen_bin}")/python" ]; then
    python_bin="$(dirname "${wavegen_bin}")/python"
fi

if stage_enabled 0; then
    if [ -n "${base}" ]; then
        echo "stage 0: base model: skipped, --base ${base} given"
    else
        echo "stage 0: base model (the ljspeech recipe) into ${base_run}"
        run wavegen preprocess ljspeech --corpus "${corpus_dir}" --workdir "${base_workdir}" \
            ${set_args[@]+"${set_args[@]}"}
        run wavegen train ljspeech --workdir "${base_workdir}" --run-dir "${base_run}" \
            ${set_args[@]+"${set_args[@]}"} ${steps[@]+"${steps[@]}"}
    fi
fi
if stage_enabled 1; then
    if [ -n "${mels_dir}" ]; then
        echo "stage 1: TTS mels: skipped, --mels ${mels_dir} given"
    else
        echo "stage 1: TTS-like stand-in mels into ${mels} (no TTS model given)"
        run "${python_bin}" "${recipe_dir}/tts_like_mels.py" "${corpus_dir}" "${mels}"
    fi
fi
if stage_enabled 2; then
    echo "stage 2: preprocess with the TTS mels"
    run wavegen preprocess "${config}" --corpus "${corpus_dir}" --workdir "${workdir}" --mels "${mels}" \
        ${set_args[@]+"${set_args[@]}"}
fi
if stage_enabled 3; then
    echo "stage 3: fine-tune from ${base_run}"
    run wavegen train "${config}" --workdir "${workdir}" --run-dir "${run_dir}" --init-from "${base_run}" \
        ${set_args[@]+"${set_args[@]}"} ${steps[@]+"${steps[@]}"}
fi
if stage_enabled 4; then
    echo "stage 4: evaluate base and fine-tuned on the test split's TTS mels"
    run wavegen evaluate --checkpoint "${base_run}" --split test --workdir "${workdir}" \
        -o "${run_dir}/eval-base" --name base
    run wavegen evaluate --checkpoint "${run_dir}" --split test --workdir "${workdir}" \
        -o "${run_dir}/eval" --name fine-tuned
fi
