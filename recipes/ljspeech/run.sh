#!/usr/bin/env bash
# LJSpeech 1.1 WaveNet vocoder, in numbered stages:
#   0 download   fetch LJSpeech-1.1.tar.bz2 from keithito.com, check its sha256, unpack into data/
#   1 preprocess feature cache + manifest in $workdir
#   2 train      $run_dir (checkpoints, TensorBoard, train.log)
#   3 synthesize the test split from the trained model into $run_dir/test
#   4 evaluate   objective scores of stage 3's output
#
# Usage: recipes/ljspeech/run.sh [--stage N] [--stop-stage M] [--workdir DIR] [--run-dir DIR] [--dry-run]
# e.g.   recipes/ljspeech/run.sh --stage 1 --stop-stage 2     # preprocess and train only
#        recipes/ljspeech/run.sh --dry-run                      # print the commands, run nothing
set -euo pipefail

recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "${recipe_dir}/../.." && pwd)"
config="${recipe_dir}/config.yaml"
data_dir="${repo_dir}/data"
workdir="${repo_dir}/exp/ljspeech"
run_dir="${repo_dir}/runs/ljspeech"
stage=0
stop_stage=4
dry_run=false

url="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
# sha256 of the 2,748,572,632-byte archive as published since 2018; the same value is pinned by
# torchaudio.datasets.LJSPEECH (_RELEASE_CONFIGS["release1"]["checksum"]).
sha256="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"

. "${recipe_dir}/../stages.sh"
parse_stage_options "$@"

if stage_enabled 0; then
    echo "stage 0: download LJSpeech 1.1 into ${data_dir}"
    if [ -f "${data_dir}/LJSpeech-1.1/metadata.csv" ]; then
        echo "  ${data_dir}/LJSpeech-1.1 already there; skipping"
    else
        fetch_checked "${url}" "${data_dir}/LJSpeech-1.1.tar.bz2" sha256 "${sha256}"
        run tar -xjf "${data_dir}/LJSpeech-1.1.tar.bz2" -C "${data_dir}"
    fi
fi

corpus_stages "${data_dir}/LJSpeech-1.1"  # 1 preprocess, 2 train, 3 synthesize, 4 evaluate
