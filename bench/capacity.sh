#!/usr/bin/env bash
# Grows databases to the capacity sizes with cmd/capacity, one engine after
# the other, and draws docs/capacity.svg from the results with
# cmd/capacityplot. Takes hours at 64 GiB; not part of any test run.
#
#   ./capacity.sh                      # quiver-hashmap and bbolt-array, 1,4,16,64 GiB
#   SIZES=1,4 ENGINES=quiver-hashmap ./capacity.sh
#   SIZES=1,4,16,32 GROW=bulk ./capacity.sh          # see cmd/capacity's -grow
#   HOT= ./capacity.sh                 # uniform keys only (no hot-set rows; see -hot)
set -euo pipefail
cd "$(dirname "$0")"
SIZES=${SIZES:-1,4,16,64}
ENGINES=${ENGINES:-quiver-hashmap,bbolt-array}
OUT=${OUT:-capacity.json}
DIR=${DIR:-${TMPDIR:-/tmp}}
GROW=${GROW:-mixed}
LABEL=${LABEL:-run-$(date +%Y%m%d-%H%M)}
go run ./cmd/capacity -sizes "$SIZES" -engines "$ENGINES" -dir "$DIR" -out "$OUT" -grow "$GROW" -label "$LABEL" ${HOT+-hot "$HOT"} ${BUDGET:+-budget "$BUDGET"}
# The figure shows this run alone: every engine measured side by side.
go run ./cmd/capacityplot -in "$OUT" -out ../docs/capacity.svg -runs "$LABEL"
echo "wrote $OUT and ../docs/capacity.svg"
