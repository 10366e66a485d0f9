#!/usr/bin/env bash
# Run every benchmark (bench/*.py, in name order) and print their tables.
# Arguments are passed to each bench (e.g. --runs 3); a bench that fails is
# reported and the others still run. Exit status 1 if any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
failed=()
for b in bench/*.py; do
    [[ $(basename "$b") == benchlib.py ]] && continue
    echo "== $b" >&2
    if ! python3 "$b" "$@"; then
        failed+=("$b")
        echo "bench: $b FAILED" >&2
    fi
done
if ((${#failed[@]})); then
    echo "bench: failed: ${failed[*]}" >&2
    exit 1
fi
