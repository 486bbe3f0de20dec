# Helpers shared by recipes/*/run.sh (sourced, not run): where things go, stage selection,
# --dry-run, checked downloads and stages 1-4. The caller sets recipe_dir before sourcing this,
# then its defaults (config, data_dir, workdir, run_dir), then calls parse_stage_options "$@".

stage=0
stop_stage=4
dry_run=false
corpus=""         # --corpus PATH: this corpus folder instead of the downloaded one (skips stage 0)
max_steps=""      # --max-steps N: passed to wavegen train
set_args=()       # --set key=value ...: passed to wavegen preprocess and wavegen train

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

# Where data/, exp/ and runs/ go: the repository root when this recipe is in a source checkout,
# else (a recipe installed with the package, or copied by `wavegen recipes copy`) the current
# directory. The `wavegen` called is always the one on PATH.
project_root() {
    local repo
    repo="$(cd "${recipe_dir}/../.." && pwd)"
    if [ -f "${repo}/pyproject.toml" ] && [ -d "${repo}/wavegen" ] && [ "${repo}/recipes" -ef "${recipe_dir}/.." ]; then
        echo "${repo}"
    else
        pwd
    fi
}

parse_stage_options() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --stage|--stop-stage|--stop_stage|--workdir|--run-dir|--corpus|--max-steps|--set)
                if [ $# -lt 2 ]; then
                    echo "$0: $1 needs a value (try --help)" >&2
                    exit 2
                fi ;;
        esac
        case "$1" in
            --stage) stage="$2"; shift 2 ;;
            --stop-stage|--stop_stage) stop_stage="$2"; shift 2 ;;
            --workdir) workdir="$2"; shift 2 ;;
            --run-dir) run_dir="$2"; shift 2 ;;
            --corpus) corpus="$2"; shift 2 ;;
            --max-steps) max_steps="$2"; shift 2 ;;
            --set) set_args+=(--set "$2"); shift 2 ;;
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
    if [ -n "${max_steps}" ] && ! [[ "${max_steps}" =~ ^[1-9][0-9]*$ ]]; then
        echo "$0: --max-steps takes a positive number of steps, got '${max_steps}'" >&2
        exit 2
    fi
    for item in ${set_args[@]+"${set_args[@]}"}; do
        if [ "${item}" != --set ] && ! [[ "${item}" =~ ^[A-Za-z_][A-Za-z0-9_.]*= ]]; then
            echo "$0: --set takes key=value, e.g. --set model.layers=20, got '${item}'" >&2
            exit 2
        fi
    done
    if [ -n "${corpus}" ] && [ "${dry_run}" = false ] && [ ! -d "${corpus}" ]; then
        echo "$0: --corpus ${corpus}: no such folder" >&2
        exit 2
    fi
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

# Stage 0 for a corpus that downloads: download_stage NAME FUNCTION; skipped with --corpus.
download_stage() {
    if ! stage_enabled 0; then
        return
    fi
    if [ -n "${corpus}" ]; then
        echo "stage 0: download $1: skipped, --corpus ${corpus} given"
    else
        echo "stage 0: download $1 into ${data_dir}"
        "$2"
    fi
}

# Stages 1-4, the same for every corpus: corpus_stages CORPUS_DIR (uses config, workdir,
# run_dir, and --corpus, --set, --max-steps when given).
corpus_stages() {
    local corpus_dir="${corpus:-$1}"
    local steps=()
    if [ -n "${max_steps}" ]; then
        steps=(--max-steps "${max_steps}")
    fi
    if stage_enabled 1; then
        echo "stage 1: preprocess"
        run wavegen preprocess "${config}" --corpus "${corpus_dir}" --workdir "${workdir}" \
            ${set_args[@]+"${set_args[@]}"}
    fi
    if stage_enabled 2; then
        echo "stage 2: train"
        run wavegen train "${config}" --workdir "${workdir}" --run-dir "${run_dir}" \
            ${set_args[@]+"${set_args[@]}"} ${steps[@]+"${steps[@]}"}
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
