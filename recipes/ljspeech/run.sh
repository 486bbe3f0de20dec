#!/usr/bin/env bash
# LJSpeech 1.1 WaveNet vocoder, in numbered stages:
#   0 download   fetch LJSpeech-1.1.tar.bz2 from keithito.com, check its sha256, unpack into data/
#   1 preprocess feature cache + manifest in $workdir
#   2 train      $run_dir (checkpoints, TensorBoard, train.log)
#   3 synthesize the test split from the trained model into $run_dir/test
#   4 evaluate   objective scores of stage 3's output
#
# Usage: recipes/ljspeech/run.sh [--stage N] [--stop-stage M] [--workdir DIR] [--run-dir DIR]
#            [--corpus PATH] [--set key=value ...] [--max-steps N] [--dry-run]
#   --corpus PATH    use the corpus in PATH (same layout), skipping the download
#   --set key=value  override a recipe value in preprocess and train (repeatable)
#   --max-steps N    train for N steps
# e.g.   recipes/ljspeech/run.sh --stage 1 --stop-stage 2     # preprocess and train only
#        recipes/ljspeech/run.sh --dry-run                      # print the commands, run nothing
#        recipes/ljspeech/run.sh --corpus ~/corpora/x --stop-stage 3 --max-steps 2000 --set model.layers=12
# In a source checkout data/, exp/ and runs/ are at the repository's top; a recipe installed
# with the package (or copied by `wavegen recipes copy`) puts them in the current directory.
set -euo pipefail

recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "${recipe_dir}/../stages.sh"
root="$(project_root)"
config="${recipe_dir}/config.yaml"
data_dir="${root}/data"
workdir="${root}/exp/ljspeech"
run_dir="${root}/runs/ljspeech"

url="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
# sha256 of the 2,748,572,632-byte archive as published since 2018; the same value is pinned by
# torchaudio.datasets.LJSPEECH (_RELEASE_CONFIGS["release1"]["checksum"]).
sha256="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"

parse_stage_options "$@"

download() {
    if [ -f "${data_dir}/LJSpeech-1.1/metadata.csv" ]; then
        echo "  ${data_dir}/LJSpeech-1.1 already there; skipping"
    else
        fetch_checked "${url}" "${data_dir}/LJSpeech-1.1.tar.bz2" sha256 "${sha256}"
        run tar -xjf "${data_dir}/LJSpeech-1.1.tar.bz2" -C "${data_dir}"
    fi
}

download_stage "LJSpeech 1.1" download
corpus_stages "${data_dir}/LJSpeech-1.1"  # 1 preprocess, 2 train, 3 synthesize, 4 evaluate
