#!/bin/sh
# driftrec-index end to end: $1 = driftrec-index, $2 = test_ann (writes the vectors).
set -eu
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$2" write_fvecs "$work/items.fvecs" 3000 > /dev/null
"$2" write_fvecs "$work/queries.fvecs" 50 > /dev/null
"$tool" build --input "$work/items.fvecs" --out "$work/a.dri" --threads 2 --ef-construction 100 \
    2> "$work/build.log"
grep -q 'building \[#*\] 100% 3000/3000' "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$tool" build --input "$work/items.fvecs" --out "$work/b.dri" --threads 1 --ef-construction 100 \
    2> /dev/null
cmp "$work/a.dri" "$work/b.dri" || { echo "1 and 2 build threads gave different files"; exit 1; }
"$tool" info --index "$work/a.dri" | tee "$work/info.txt"
grep -q '^items 3000$' "$work/info.txt"
"$tool" search --index "$work/a.dri" --queries "$work/queries.fvecs" --k 10 --ef 80 --check \
    | tee "$work/check.txt"
awk '/recall@10/ { if ($11 + 0 < 0.9) { print "recall too low"; exit 1 } }' "$work/check.txt"
"$tool" search --index "$work/a.dri" --queries "$work/queries.fvecs" --k 5 --limit 2 \
    --exclude 1,2,3 | tee "$work/search.txt"
[ "$(wc -l < "$work/search.txt")" -eq 2 ]
printf 'X' | dd of="$work/a.dri" bs=1 seek=1000 conv=notrunc 2> /dev/null
if "$tool" info --index "$work/a.dri" 2> "$work/err.txt"; then
    echo "a corrupt file loaded"; exit 1
fi
grep -q 'checksum' "$work/err.txt"
echo "PASS ann_cli"
