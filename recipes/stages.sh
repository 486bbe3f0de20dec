# Helpers shared by recipes/*/run.sh (sourced, not run): stage selection, --dry-run, checked
# downloads and stages 1-4. Expects the caller to set stage, stop_stage, workdir,
# run_dir and dry_run defaults first.

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

parse_stage_options() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --stage) stage="$2"; shift 2 ;;
            --stop-stage|--stop_stage) stop_stage="$2"; shift 2 ;;
            --workdir) workdir="$2"; shift 2 ;;
            --run-dir) run_dir="$2"; shift 2 ;;
            --dry-run) dry_run=true; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "$0: unknown option '$1' (try --help)" >&2; exit 2 ;;
        esac
    done
    for value in "${stage}" "${stop_stage}"; do
        if ! [[ "${value}" =~ ^[0-4]$ ]]; then
            echo "$0: --stage and --stop-stage take a stage number 0-4, got '${value}'" >&2
            exit 2
        fi
    done
}

stage_enabled() {
    [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]
}

# Run a command, or only print it with --dry-run.
run() {
    echo "+ $*"
    if [ "${dry_run}" = false ]; then
        "$@"
    fi
}

# fetch_checked URL FILE sha256|md5 DIGEST: download (resuming a partial file), then verify.
fetch_checked() {
    local url="$1" file="$2" algo="$3" digest="$4"
    run mkdir -p "$(dirname "${file}")"
    run curl -L --fail --retry 3 -C - -o "${file}" "${url}"
    echo "+ check ${algo} of ${file}"
    if [ "${dry_run}" = false ] && ! echo "${digest}  ${file}" | "${algo}sum" --check --status; then
        echo "$0: ${file} does not match the published ${algo} ${digest}; delete it and rerun stage 0" >&2
        exit 1
    fi
}

# Stages 1-4, the same for every corpus: corpus_stages CORPUS_DIR (uses config, workdir, run_dir).
corpus_stages() {
    local corpus="$1"
    if stage_enabled 1; then
        echo "stage 1: preprocess"
        run wavegen preprocess "${config}" --corpus "${corpus}" --workdir "${workdir}"
    fi
    if stage_enabled 2; then
        echo "stage 2: train"
        run wavegen train "${config}" --workdir "${workdir}" --run-dir "${run_dir}"
    fi
    if stage_enabled 3; then
        echo "stage 3: synthesize the test split"
        run wavegen synthesize --checkpoint "${run_dir}" --split test --workdir "${workdir}" -o "${run_dir}/test"
    fi
    if stage_enabled 4; then
        echo "stage 4: evaluate"
        evaluate "${run_dir}" "${workdir}"
    fi
}

# Stage 4: copy-synthesis of the test split with the trained model, scored with Griffin-Lim and
# the ground truth beside it (report in RUN_DIR/eval/report.md; a rerun resumes).
evaluate() {
    local run="$1" features="$2"
    run wavegen evaluate --checkpoint "${run}" --split test --workdir "${features}" -o "${run}/eval"
}
