#!/usr/bin/env bash
# The layer check of docs/architecture.md: a file in module M (include/tessera/M/, src/M/) may include
# "tessera/N/..." only when N is M or a module below M. Prints each upward include as
# file:line: message and exits 1; exits 0 with a one-line summary otherwise.
#
# Usage: tools/check_layers.sh [REPO_ROOT]   (default: the repository holding this script)
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
if [[ ! -d "$root" ]]; then
  echo "check_layers: no such directory: $root" >&2
  exit 2
fi
cd "$root"

# Each module and the modules directly below it (docs/architecture.md, "Layers"). Lowest first.
layers='
core:
comm:core
tensor:core
autograd:tensor
nn:autograd
optim:autograd
data:tensor
parallel:nn optim comm
estimators:comm data
train:parallel data estimators
cli:train
'

files=()
for dir in include/tessera src; do
  [[ -d "$dir" ]] || continue
  while IFS= read -r -d '' f; do files+=("$f"); done < <(
    find "$dir" -mindepth 2 -type f \
      \( -name '*.h' -o -name '*.hh' -o -name '*.hpp' -o -name '*.inl' -o -name '*.ipp' \
         -o -name '*.cc' -o -name '*.cpp' -o -name '*.cxx' \) -print0 | sort -z)
done

if [[ ${#files[@]} -eq 0 ]]; then
  echo "check_layers: no sources under include/tessera/ or src/ in $root"
  exit 0
fi

awk -v layers="$layers" '
  BEGIN {
    n = split(layers, lines, "\n")
    for (i = 1; i <= n; i++) {
      if (lines[i] == "") continue
      split(lines[i], kv, ":")
      mod = kv[1]
      order[++nmods] = mod
      known[mod] = 1
      direct[mod] = kv[2]
    }
    # Transitive closure; modules are listed lowest first, so one pass in order suffices.
    for (i = 1; i <= nmods; i++) {
      mod = order[i]
      allowed[mod, mod] = 1
      below[mod] = mod
      m = split(direct[mod], deps, " ")
      for (j = 1; j <= m; j++) {
        for (k = 1; k <= nmods; k++) {
          if (allowed[deps[j], order[k]] && !allowed[mod, order[k]]) {
            allowed[mod, order[k]] = 1
            below[mod] = below[mod] " " order[k]
          }
        }
      }
    }
  }
  FNR == 1 {
    nfiles++
    # include/tessera/<m>/... or src/<m>/...
    np = split(FILENAME, parts, "/")
    mod = (parts[1] == "include") ? parts[3] : parts[2]
    if (!(mod in known)) {
      printf "%s:1: file is in unknown module \"%s\" (known: core comm tensor autograd nn optim data parallel train cli)\n", FILENAME, mod
      bad++
    }
  }
  /^[ \t]*#[ \t]*include[ \t]*["<]tessera\// {
    nincludes++
    line = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*["<]/, "", line)
    sub(/[">].*$/, "", line)
    n = split(line, p, "/")
    target = (n >= 3) ? p[2] : ""
    if (!(mod in known)) next
    if (target == "" || !(target in known)) {
      printf "%s:%d: includes \"%s\", which is in no module; %s may include only: %s\n", FILENAME, FNR, line, mod, below[mod]
      bad++
    } else if (!allowed[mod, target]) {
      printf "%s:%d: %s must not include %s (\"%s\"); %s may include only: %s\n", FILENAME, FNR, mod, target, line, mod, below[mod]
      bad++
    }
  }
  END {
    if (bad) {
      printf "check_layers: %d violation(s) in %d files\n", bad, nfiles
      exit 1
    }
    printf "check_layers: OK, %d files, %d tessera includes, none upward\n", nfiles, nincludes
  }
' "${files[@]}"
