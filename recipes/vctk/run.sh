#!/usr/bin/env bash
# VCTK 0.92 multi-speaker WaveNet vocoder, in numbered stages:
#   0 download   fetch VCTK-Corpus-0.92.zip (11.7 GB) from Edinburgh DataShare, check its md5, unpack into data/
#   1 preprocess feature cache + manifest in $workdir
#   2 train      $run_dir (checkpoints, TensorBoard, train.log)
#   3 synthesize the test split from the trained model into $run_dir/test
#   4 evaluate   objective scores of stage 3's output
#
# Usage: recipes/vctk/run.sh [--stage N] [--stop-stage M] [--workdir DIR] [--run-dir DIR]
#            [--corpus PATH] [--set key=value ...] [--max-steps N] [--dry-run]
#   --corpus PATH    use the corpus in PATH (same layout), skipping the download
#   --set key=value  override a recipe value in preprocess and train (repeatable)
#   --max-steps N    train for N steps
# e.g.   recipes/vctk/run.sh --stage 1 --stop-stage 2     # preprocess and train only
#        recipes/vctk/run.sh --dry-run                      # print the commands, run nothing
#        recipes/vctk/run.sh --corpus ~/corpora/x --stop-stage 3 --max-steps 2000 --set model.layers=12
# In a source checkout data/, exp/ and runs/ are at the repository's top; a recipe installed
# with the package (or copied by `wavegen recipes copy`) puts them in the current directory.
set -euo pipefail

recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "${recipe_dir}/../stages.sh"
root="$(project_root)"
config="${recipe_dir}/config.yaml"
data_dir="${root}/data"
workdir="${root}/exp/vctk"
run_dir="${root}/runs/vctk"

url="https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
# md5 of the 11,747,302,977-byte archive as listed in the DataShare record (the only checksum
# the publisher gives); torchaudio.datasets.VCTK_092 pins the same value.
md5="8a6ba2946b36fcbef0212cad601f4bfa"

parse_stage_options "$@"

download() {
    if [ -f "${data_dir}/VCTK-Corpus-0.92/speaker-info.txt" ]; then
        echo "  ${data_dir}/VCTK-Corpus-0.92 already there; skipping"
    else
        fetch_checked "${url}" "${data_dir}/VCTK-Corpus-0.92.zip" md5 "${md5}"
        # The zip holds the corpus files at its top level: unpack into a folder of its own.
        run unzip -q "${data_dir}/VCTK-Corpus-0.92.zip" -d "${data_dir}/VCTK-Corpus-0.92"
    fi
}

download_stage "VCTK 0.92" download
corpus_stages "${data_dir}/VCTK-Corpus-0.92"  # 1 preprocess, 2 train, 3 synthesize, 4 evaluate
