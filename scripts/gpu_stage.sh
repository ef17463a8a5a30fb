#!/bin/bash
# Ship big files to the lent GPU machine in pieces that fit one `run` call's carry (64 MiB with
# the working tree, which the shipped adapter has grown to ~21 MB; see ../shared/H200.md).
#   here:        bash scripts/gpu_stage.sh split build/gpu/p1 build/gpu/w0b ...
#                -> build/gpu/parts/00, 01, ... (each at most PART_MB, default 36 MB)
#   on the GPU, one `run` per part folder, back to back (the machine forgets /root when idle):
#                bash scripts/gpu_stage.sh receive build/gpu/parts/NN     (carry that folder)
#   then once:   bash scripts/gpu_stage.sh install   (checks every file's sha256, then pip
#                installs the wheels into /root/site and leaves other files in /root/staged)
set -euo pipefail
PART_MB=${PART_MB:-36}
STAGED=/root/staged
case "$1" in
  split)
    shift
    out=build/gpu/parts
    rm -rf "$out" && mkdir -p "$out"
    work=$(mktemp -d)
    for dir in "$@"; do
      for f in "$dir"/*; do
        name=$(basename "$f")
        split -b "${PART_MB}M" -d -a 3 "$f" "$work/$name.part-"
        sha256sum "$f" | awk -v n="$name" '{print $1 "  " n}' >> "$out/SHA256SUMS"
      done
    done
    # pack the pieces into folders of at most PART_MB each, in order
    n=0 size=0 limit=$((PART_MB * 1024 * 1024))
    mkdir -p "$out/00"
    for piece in $(ls "$work" | sort); do
      bytes=$(stat -c %s "$work/$piece")
      if [ $((size + bytes)) -gt $limit ] && [ $size -gt 0 ]; then
        n=$((n + 1)) size=0
        mkdir -p "$out/$(printf %02d $n)"
      fi
      mv "$work/$piece" "$out/$(printf %02d $n)/"
      size=$((size + bytes))
    done
    cp "$out/SHA256SUMS" "$out/00/"
    rmdir "$work"
    du -sh "$out"/*/
    ;;
  receive)
    mkdir -p $STAGED/pieces
    cp "$2"/* $STAGED/pieces/
    ls $STAGED/pieces | wc -l
    ;;
  install)
    cd $STAGED
    for name in $(awk '{print $2}' pieces/SHA256SUMS); do
      cat $(ls pieces/"$name".part-* | sort) > "$name"
    done
    sha256sum -c pieces/SHA256SUMS
    mkdir -p /root/site
    ls ./*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --target /root/site ./*.whl
    ls /root/site | head -40
    ;;
  *)
    echo "usage: $0 split DIR... | receive PART_DIR | install" >&2
    exit 2
    ;;
esac
