#!/usr/bin/env bash
# The README's pictures, from a study: the report and the study in optuna-dashboard, drawn by
# Debian's headless Chromium. Usage (from a folder holding mtlsearch.db and its report):
#   bash docs/img/make_screenshots.sh STUDY_NAME REPORT.html OUT_FOLDER
set -euo pipefail
study=$1 report=$2 out=$3
port=18080
mtlsearch dashboard --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
until curl -sf "http://127.0.0.1:$port/api/studies" >/dev/null; do sleep 0.5; done
id=$(curl -sf "http://127.0.0.1:$port/api/studies" | python3 -c "import json,sys; print(next(s['study_id'] for s in json.load(sys.stdin)['study_summaries'] if s['study_name']=='$study'))")
shot() {  # url, file, height
  chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --window-size=1280,"$3" --virtual-time-budget=20000 --screenshot="$2" "$1" 2>/dev/null
}
shot "file://$(realpath "$report")" "$out/report.png" 2600
shot "http://127.0.0.1:$port/dashboard/studies/$id" "$out/dashboard.png" 2400
