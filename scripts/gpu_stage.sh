#!/bin/bash
# Ship big files to the lent GPU machine in pieces that fit one `run` call's carry (64 MiB with
# the working tree, which the shipped adapter has grown to ~21 MB; see ../shared/H200.md).
#   here:        bash scripts/gpu_stage.sh split build/gpu/p1 build/gpu/w0b ...
#                -> one tar of those folders' files, cut into build/gpu/parts/00, 01, ...
#                   (one piece of PART_MB each; by default what one call's 64 MiB leaves
#                   beside the working tree, less 2 MiB: 37 MiB with the tree at 23 MiB)
#   on the GPU, one `run` per part folder, back to back (the machine forgets /root when idle):
#                bash scripts/gpu_stage.sh receive build/gpu/parts/NN     (carry that folder)
#   then once:   bash scripts/gpu_stage.sh install   (joins the pieces, checks the tar's sha256,
#                pip installs its wheels into /root/site and leaves other files in /root/staged)
# PARTS, STAGED and SITE name other folders (tests/test_scripts.py).
set -euo pipefail
if [ -z "${PART_MB:-}" ]; then  # the working tree travels with every call (git's tracked files)
  tree_mb=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print int(s / 1048576) + 1}')
  PART_MB=$(( 62 - tree_mb ))
  if [ "$PART_MB" -lt 8 ]; then echo "the working tree ($tree_mb MiB) leaves no room for a part" >&2; exit 2; fi
fi
PARTS=${PARTS:-build/gpu/parts}
STAGED=${STAGED:-/root/staged}
SITE=${SITE:-/root/site}
case "$1" in
  split)
    shift
    out=$PARTS
    rm -rf "$out" && mkdir -p "$out"
    work=$(mktemp -d)
    # one uncompressed tar (wheels are zips already) of the folders' files, flat
    tar -cf "$work/staged.tar" $(for dir in "$@"; do printf -- '-C %s %s ' "$(cd "$dir" && pwd)" "$(cd "$dir" && ls)"; done)
    (cd "$work" && sha256sum staged.tar > SHA256SUMS)
    split -b "${PART_MB}M" -d -a 2 "$work/staged.tar" "$work/staged.tar.part-"
    for piece in "$work"/staged.tar.part-*; do
      n=${piece##*part-}
      mkdir -p "$out/$n" && mv "$piece" "$out/$n/"
    done
    cp "$work/SHA256SUMS" "$out/00/"
    rm -rf "$work"
    du -sh "$out"/*/
    ;;
  receive)
    mkdir -p "$STAGED/pieces"
    cp "$2"/* "$STAGED/pieces/"
    ls "$STAGED/pieces" | wc -l
    ;;
  install)
    cd "$STAGED"
    cat $(ls pieces/staged.tar.part-* | sort) > staged.tar
    sha256sum -c pieces/SHA256SUMS
    tar -xf staged.tar && rm staged.tar
    if ls ./*.whl >/dev/null 2>&1; then
      mkdir -p "$SITE"
      python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" ./*.whl
      ls "$SITE" | head -40
    fi
    ;;
  *)
    echo "usage: $0 split DIR... | receive PART_DIR | install" >&2
    exit 2
    ;;
esac
