#!/usr/bin/env bash
# Checks that every *.h and *.cc under include src tests bench examples tools (tracked, or
# untracked and not ignored) is formatted by .clang-format. With --fix, formats them in place.
#
# Usage: tools/check_format.sh [--fix]      CLANG_FORMAT=... picks the binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
clang_format=${CLANG_FORMAT:-clang-format}
dirs=(include src tests bench examples tools)

fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  "") ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

if ! command -v "$clang_format" >/dev/null; then
  echo "check_format: $clang_format not found (scripts/install-deps.sh installs it)" >&2
  exit 2
fi

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    [[ -f "$f" ]] && files+=("$f")  # a tracked file deleted in the work tree is skipped
  done < <(git ls-files -z --cached --others --exclude-standard -- \
             "${dirs[@]/%//*.h}" "${dirs[@]/%//*.cc}" | sort -zu)
else
  while IFS= read -r -d '' f; do files+=("$f"); done < <(
    find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.cc' \) -print0 2>/dev/null | sort -z)
fi

if [[ ${#files[@]} -eq 0 ]]; then
  echo "check_format: no *.h or *.cc files"
  exit 0
fi

if [[ $fix -eq 1 ]]; then
  printf '%s\0' "${files[@]}" | xargs -0 "$clang_format" -i --style=file
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi

# clang-format prints every misplaced token; list each file once with its count instead.
if ! out=$(printf '%s\0' "${files[@]}" | xargs -0 "$clang_format" --dry-run -Werror --style=file 2>&1); then
  bad=$(grep -oE '^[^:]+:[0-9]+:[0-9]+: error: code should be clang-formatted' <<<"$out" \
          | cut -d: -f1 | sort | uniq -c | awk '{printf "%s: %d place(s) differ from .clang-format\n", $2, $1}')
  if [[ -n "$bad" ]]; then echo "$bad"; else echo "$out"; fi
  echo "check_format: $(grep -c . <<<"${bad:-$out}") of ${#files[@]} files not formatted;" \
       "run 'make format' (details: clang-format --dry-run FILE)" >&2
  exit 1
fi
echo "check_format: OK, ${#files[@]} files"
