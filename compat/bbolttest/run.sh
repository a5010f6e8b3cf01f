#!/usr/bin/env bash
# Runs bbolt v1.5.0's own public-API tests (its external bbolt_test
# package) against compat/bbolt, the bbolt API backed by quiver, each test
# in its own process. See README.md beside this script.
#
# None of bbolt's files are kept in this repository: each run builds a
# scratch module named go.etcd.io/bbolt from compat/bbolt's sources and
# bbolt's test files, read from the Go module cache, and deletes it on
# exit.
#
# Usage: compat/bbolttest/run.sh [-full] [-v] [-run REGEXP] [-j N]
#
#   -full     bbolt's tests at full size: the 10000-operation simulations
#             too, and the concurrency tests for bbolt's default 30 s a
#             case (about 5 minutes in all on 2 CPUs, against 2.5).
#   -v        print every test's output, not only the failures'.
#   -run RE   run only the tests whose names match RE (grep -E).
#   -j N      run N tests at a time (default: the number of CPUs).
#
# Environment: BBOLTTEST_TIMEOUT, seconds a test may take (default 600);
# BBOLTTEST_KEEP=1 keeps the scratch directory and prints its path.
#
# Exit status: 0 when every test not on the skip list passed or skipped
# itself; 1 otherwise (the failures are listed with their output's tail).
set -euo pipefail

BBOLT_VERSION=v1.5.0

# The skip list, each entry with its reason. The only reasons allowed: the
# test asserts bbolt's page counts, its file growth steps, its on-disk
# format (page layout, meta pages, freelist pages read raw, guts_cli) or a
# figure internal to bbolt.
skip=(
	# --- bbolt's page counts
	TestBucket_Stats             # exact page and byte counts for 4/16/64 KiB pages
	TestBucket_Stats_Large       # exact page and byte counts of 100000 keys
	TestBucket_Stats_RandomFill  # exact page and byte counts at FillPercent 0.9
	TestBucket_Stats_Nested      # bbolt's leaf counts and bytes, with one inline bucket
	TestBucket_Stats_Small       # an inline bucket: 0 leaf pages, InlineBucketInuse 16+16+6
	TestBucket_Stats_EmptyBucket # an inline bucket: Depth 1, InlineBucketInuse 16 (bbolt's page header)
	TestDB_Stats                 # TxStats.PageCount 2 and PendingPageN 2 after one commit
	# --- bbolt's file growth steps
	TestTx_TruncateBeforeWrite # the file doubles to AllocSize, then grows by AllocSize
	# A 50 MiB value under MaxSize 64 MiB fails in bbolt only because its
	# growth adds AllocSize (16 MiB) to what is needed; quiver fits it.
	TestDB_MaxSizeWithHighInitialMMapDoesNotGrowOnWrite
	# 2000 values of 1000 bytes take 4 MiB in both engines; 200 KB more
	# must then fail with ErrMaxSizeReached (MaxSize 5 MiB) because
	# bbolt's file would grow by a 4 MiB step; quiver's grows by less and
	# takes them under MaxSize.
	TestDB_MaxSizeNotExceeded
	# --- bbolt's on-disk format
	TestDB_Consistency          # pages 0-5 are meta, meta, free, free, leaf, freelist
	TestOpen_ErrVersionMismatch # rewrites bbolt's meta struct (version) in both metas: quiver sees damage
	TestTx_Check_CorruptPage    # guts_cli: corrupts a key in bbolt's leaf page layout
	TestTx_Check_Panic          # guts_cli: clears bbolt's branch flag; wants bbolt's message
	# --- a figure internal to bbolt
	TestDBUnmap # reflects on bbolt.DB's unexported fields dataref, data, datasz
)

# Scaled down unless -full: these run with -test.short, where bbolt skips
# them (the same simulations with 1000 operations still run).
slow='_10000op_'

full=0
verbose=0
only=
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
	case "$1" in
	-full) full=1 ;;
	-v) verbose=1 ;;
	-run) only=$2; shift ;;
	-j) jobs=$2; shift ;;
	*) echo "usage: $0 [-full] [-v] [-run REGEXP] [-j N]" >&2; exit 2 ;;
	esac
	shift
done
timeout_s=${BBOLTTEST_TIMEOUT:-600}
if [ "$full" = 0 ]; then
	# bbolt's concurrency tests run 5 cases of this length each (30 s
	# when unset).
	export TEST_CONCURRENT_CASE_DURATION=${TEST_CONCURRENT_CASE_DURATION:-3s}
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
compat=$root/compat/bbolt

scratch=$(mktemp -d "${TMPDIR:-/tmp}/bbolttest.XXXXXX")
if [ "${BBOLTTEST_KEEP:-}" = 1 ]; then
	echo "scratch directory kept: $scratch"
else
	trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
fi

# bbolt's module, from the module cache (downloaded from the module proxy
# if absent); `go mod download` runs outside any module.
mkdir "$scratch/dl"
src=$(cd "$scratch/dl" && GOFLAGS=-mod=mod go mod download -json "go.etcd.io/bbolt@$BBOLT_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -f "$src/db_test.go" ]; then
	echo "bbolttest: go.etcd.io/bbolt@$BBOLT_VERSION is not in the module cache" >&2
	exit 1
fi
rmdir "$scratch/dl"

# The module under test: compat/bbolt as it is in the work tree, without
# its own tests (quiver's CI runs them).
mod=$scratch/bbolt
mkdir "$mod"
(cd "$compat" && find . \( -name '*.go' ! -name '*_test.go' \) -o -name go.mod -o -name go.sum) |
	while read -r f; do
		mkdir -p "$mod/$(dirname "$f")"
		cp "$compat/$f" "$mod/$f"
	done

# bbolt's external tests, and the packages of bbolt's they import:
#   internal/btesting: bbolt's test DB wrapper; bbolt's public API only.
#   internal/guts_cli: reads and writes bbolt's pages raw, for the two
#     tx_check tests on the skip list. It needs bbolt's internal/common,
#     which replaces compat's here: compat's declares only Pgid and
#     PageInfo, as bbolt's does (the build fails if that changes).
tests=(bucket_test.go concurrent_test.go cursor_test.go db_test.go movebucket_test.go
	quick_test.go simulation_test.go simulation_no_freelist_sync_test.go tx_check_test.go
	tx_test.go unix_test.go utils_test.go)
for f in "${tests[@]}"; do
	cp "$src/$f" "$mod/"
done
rm -rf "$mod/internal/common"
for p in btesting guts_cli common; do
	mkdir -p "$mod/internal/$p"
	cp "$src/internal/$p/"*.go "$mod/internal/$p/"
	rm -f "$mod/internal/$p/"*_test.go
done
chmod -R u+w "$mod"

# go.mod: quiver is this work tree; the tests' own dependencies at the
# versions bbolt's go.mod names (tidy adds what those need in turn).
cd "$mod"
go mod edit -replace "github.com/quiverdb/quiver=$root"
for dep in github.com/stretchr/testify golang.org/x/sync; do
	v=$(awk -v m="$dep" '$1 == m { print $2 }' "$src/go.mod")
	go mod edit -require "$dep@$v"
done
GOFLAGS=-mod=mod go mod tidy
echo "== building bbolt $BBOLT_VERSION's tests against compat/bbolt"
go test -c -o bbolt.test .

mapfile -t all < <(./bbolt.test -test.list . 2>/dev/null | grep -E '^(Test|Example)' | sort)
if [ -n "$only" ]; then
	mapfile -t all < <(printf '%s\n' "${all[@]}" | grep -E -- "$only" || true)
fi

# run1 NAME: runs test NAME alone in a process of its own, leaving its
# output in out/NAME.log and its outcome (pass, skip, fail, timeout) in
# out/NAME.result.
run1() {
	local name=$1 rc=0 result args=()
	if [ "$BBOLTTEST_FULL" = 0 ] && [[ $name =~ $BBOLTTEST_SLOW ]]; then
		args+=(-test.short)
	fi
	timeout -k 10 "$BBOLTTEST_TIMEOUT_S" ./bbolt.test -test.run "^${name}\$" -test.v -test.count 1 \
		-test.timeout 0 "${args[@]}" >"$BBOLTTEST_OUT/$name.log" 2>&1 || rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		result=timeout
	elif [ "$rc" != 0 ]; then
		result=fail
	elif grep -q -- "^--- SKIP: $name " "$BBOLTTEST_OUT/$name.log"; then
		result=skip
	elif grep -q -- "^--- PASS: $name " "$BBOLTTEST_OUT/$name.log"; then
		result=pass
	else
		result=fail
	fi
	echo "$result" >"$BBOLTTEST_OUT/$name.result"
}
export -f run1
mkdir "$scratch/out"
export BBOLTTEST_OUT=$scratch/out BBOLTTEST_TIMEOUT_S=$timeout_s BBOLTTEST_FULL=$full BBOLTTEST_SLOW=$slow

run=()
listed=()
for t in "${all[@]}"; do
	s=0
	for k in "${skip[@]}"; do
		if [ "$t" = "$k" ]; then s=1; fi
	done
	if [ "$s" = 1 ]; then listed+=("$t"); else run+=("$t"); fi
done

mode="scaled down (-full for full size)"
if [ "$full" = 1 ]; then mode="full size"; fi
echo "== running ${#run[@]} tests, each in its own process, $jobs at a time, $mode; ${#listed[@]} on the skip list"
start=$SECONDS
if [ "${#run[@]}" -gt 0 ]; then
	printf '%s\n' "${run[@]}" | xargs -P "$jobs" -I{} bash -c 'run1 "$1"' _ {}
fi

pass=() fail=() skipped=()
for t in "${run[@]}"; do
	r=$(cat "$scratch/out/$t.result" 2>/dev/null || echo fail)
	case "$r" in
	pass) pass+=("$t") ;;
	skip)
		why=$(grep -B1 -- "^--- SKIP: $t " "$scratch/out/$t.log" | sed -n '1s/^[[:space:]]*[a-z_]*\.go:[0-9]*: //p')
		case "$why" in "=== RUN"* | "") why="t.SkipNow" ;; esac
		skipped+=("$t ($why)")
		;;
	timeout) fail+=("$t (timed out after ${timeout_s}s)") ;;
	*) fail+=("$t") ;;
	esac
	if [ "$r" != pass ] && [ "$r" != skip ]; then
		echo "--- $r: $t"
		tail -n 60 "$scratch/out/$t.log" | sed 's/^/    /'
	elif [ "$verbose" = 1 ]; then
		echo "--- $r: $t"
		sed 's/^/    /' "$scratch/out/$t.log"
	fi
done

echo "== bbolt $BBOLT_VERSION's tests on compat/bbolt: $((SECONDS - start)) s, $mode"
echo "passed:  ${#pass[@]}"
echo "skipped by the test: ${#skipped[@]}"
for t in "${skipped[@]}"; do echo "    $t"; done
echo "skip list: ${#listed[@]}"
for t in "${listed[@]}"; do echo "    $t"; done
echo "failed:  ${#fail[@]}"
for t in "${fail[@]}"; do echo "    $t"; done
[ "${#fail[@]}" = 0 ]
