#!/usr/bin/env bash
# Download SAM2.1 checkpoints from Meta's official release into this folder.
#   bash checkpoints/download.sh            # all four
#   bash checkpoints/download.sh sam2.1_hiera_t sam2.1_hiera_l
# Weights are never committed (*.pt is git-ignored). Needs network access to
# dl.fbaipublicfiles.com; samtrack's tests never call this script.
set -euo pipefail
cd "$(dirname "$0")"
BASE="https://dl.fbaipublicfiles.com/segment_anything_2/092824"
declare -A FILES=(
  [sam2.1_hiera_t]=sam2.1_hiera_tiny.pt
  [sam2.1_hiera_s]=sam2.1_hiera_small.pt
  [sam2.1_hiera_b+]=sam2.1_hiera_base_plus.pt
  [sam2.1_hiera_l]=sam2.1_hiera_large.pt
)
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(sam2.1_hiera_t sam2.1_hiera_s sam2.1_hiera_b+ sam2.1_hiera_l)
fi
for m in "${models[@]}"; do
  file="${FILES[$m]:-}"
  if [ -z "$file" ]; then
    echo "unknown model '$m'; choose from ${!FILES[*]}" >&2
    exit 2
  fi
  if [ -f "$file" ]; then
    echo "$file: already here"
    continue
  fi
  echo "downloading $file"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$file.part" "$BASE/$file"
  else
    wget -O "$file.part" "$BASE/$file"
  fi
  mv "$file.part" "$file"
done
