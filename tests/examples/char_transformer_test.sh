#!/usr/bin/env bash
# Runs a character-level transformer example (char_transformer*.toml) as shipped, on the processes
# it asks for, cut to its first epoch, and checks that the transformer learned something of the
# text: a test loss per character well under what knowing only the vocabulary gives (log of the
# number of distinct bytes). Skips (77) without the fortunes package. Usage: char_transformer_test.sh TESSERA_BINARY EXAMPLE_CONFIG
set -euo pipefail
tessera=$1
example=$2
text=/usr/share/games/fortunes/computers
[[ -r $text ]] || { echo "SKIP: $text is missing (apt install fortunes)"; exit 77; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$("$tessera" train "$example" --set train.epochs=1 --set "train.run_dir=\"$dir/run\"" 2>&1)
echo "$out" | grep -v ' step '
loss=$(sed -n 's/^\(\[rank 0\] \)\{0,1\}trained .*test loss \([0-9.]*\).*/\2/p' <<<"$out")
[[ -n $loss ]] || { echo "FAIL: no test loss in the output" >&2; exit 1; }
bytes=$(LC_ALL=C od -An -v -tu1 "$text" | tr -s ' ' '\n' | sed '/^$/d' | sort -un | wc -l)
bound=$(awk -v n="$bytes" 'BEGIN { print log(n) - 1.0 }')
awk -v l="$loss" -v b="$bound" 'BEGIN { exit !(l < b) }' ||
  { echo "FAIL: test loss $loss is not under log($bytes) - 1 = $bound" >&2; exit 1; }
echo "PASS: test loss $loss per character, under log($bytes) - 1 = $bound"
