#!/bin/sh
# run.sh — build the libFuzzer harnesses in tests/fuzz and run each one.
#
#   tests/fuzz/run.sh BUILDDIR [SECONDS] [HARNESS...]
#
# BUILDDIR is a configured build tree (it holds autoconfig.h); the harnesses
# are compiled there, under BUILDDIR/fuzz, straight from the sources with
# clang -fsanitize=fuzzer,address,undefined.  Each harness runs SECONDS
# (default 60) on a copy of its seed corpus (tests/fuzz/corpus/HARNESS), so
# the repository is never written to.  HARNESS names (codec, address,
# smtp_reply, policy, config) pick a subset; default all.
#
# Prints the executions of each harness (libFuzzer's final stats).  Exits 1
# when a harness crashes, leaks, hangs or fails an invariant: the input that
# did it is kept and its path printed, with the log.  Exits 2 on a usage or
# build error.  CLANG overrides the compiler; FUZZ_FLAGS adds libFuzzer
# options (e.g. FUZZ_FLAGS=-jobs=4); FUZZ_PARALLEL runs that many harnesses
# at once.
set -u

usage() {
	echo "usage: $0 BUILDDIR [SECONDS] [HARNESS...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
builddir=$1
shift
seconds=60
if [ $# -ge 1 ]; then
	case $1 in
	''|*[!0-9]*) usage ;;
	esac
	seconds=$1
	shift
fi
[ -f "$builddir/autoconfig.h" ] || {
	echo "$0: $builddir/autoconfig.h not found: give a configured build directory" >&2
	exit 2
}

srcdir=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
builddir=$(cd "$builddir" && pwd) || exit 2
fuzzdir=$srcdir/tests/fuzz
cc=${CLANG:-clang}
harnesses=${*:-codec address smtp_reply policy config}

libconfig_libs=$(pkg-config --libs libconfig 2>/dev/null) || libconfig_libs=-lconfig
cflags="-std=gnu11 -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wno-unused-parameter
	-I$builddir -I$srcdir/include -I$srcdir/src/probed -I$srcdir/src/policy"

# The project sources each harness needs, besides its own file.
sources() {
	case $1 in
	codec) echo src/lib/codec.c src/lib/vocab.c ;;
	address) echo src/lib/address.c ;;
	smtp_reply) echo src/probed/smtp_reply.c src/probed/classify.c \
	    src/lib/linebuf.c src/lib/vocab.c ;;
	policy) echo src/policy/policy_proto.c src/lib/linebuf.c ;;
	config) echo src/probed/config.c src/probed/config_check.c \
	    src/probed/config_lex.c ;;
	*) return 1 ;;
	esac
}

libs() {
	case $1 in
	config) echo "$libconfig_libs" ;;
	esac
}

bindir=$builddir/fuzz
mkdir -p "$bindir" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/probed-fuzz.XXXXXX") || exit 2

for h in $harnesses; do
	src=$(sources "$h") || { echo "$0: unknown harness '$h'" >&2; exit 2; }
	files="$fuzzdir/fuzz_$h.c"
	for f in $src; do
		files="$files $srcdir/$f"
	done
	echo "build fuzz_$h"
	# shellcheck disable=SC2086,SC2046 # flag and file lists are split on purpose
	$cc $cflags '-DSYSCONFDIR="/etc"' -o "$bindir/fuzz_$h" $files $(libs "$h") || {
		echo "$0: building fuzz_$h failed" >&2
		exit 2
	}
done

# run_one HARNESS: fuzz one harness; its table row (and, on failure, where
# the evidence is) goes to $work/HARNESS.row, its verdict to HARNESS.status.
run_one() {
	h=$1
	corpus=$work/corpus/$h
	artifacts=$work/artifacts/$h
	log=$work/$h.log
	row=$work/$h.row
	mkdir -p "$corpus" "$artifacts"
	if [ -d "$fuzzdir/corpus/$h" ]; then
		cp "$fuzzdir/corpus/$h"/* "$corpus"/ 2>/dev/null
	fi
	# -timeout: one input running 10 s is a hang worth a report.
	# shellcheck disable=SC2086
	(cd "$work" && TMPDIR=$work "$bindir/fuzz_$h" -max_total_time="$seconds" \
	    -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" \
	    ${FUZZ_FLAGS:-} "$corpus") >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	crashes=$(find "$artifacts" -type f 2>/dev/null)
	if [ "$rc" -eq 0 ] && [ -z "$crashes" ]; then
		result=ok
	else
		result="FAILED (exit $rc)"
	fi
	printf '%-12s %12s %10s  %s\n' "$h" "${execs:-?}" "${rate:-?}" "$result" >"$row"
	if [ "$result" != ok ]; then
		for c in $crashes; do
			echo "  input: $c"
		done
		echo "  log:   $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 |
		    sed 's/^/  /'
	fi >>"$row"
	echo "$result" >"$work/$h.status"
}

# FUZZ_PARALLEL harnesses run at once (default 1): each is one process, so
# on an idle machine with N cores N of them cost no more per harness, and
# CI's 60 s per harness take minutes less.
parallel=${FUZZ_PARALLEL:-1}
case $parallel in
''|*[!0-9]*|0) echo "$0: FUZZ_PARALLEL must be a positive integer" >&2; exit 2 ;;
esac
running=0
for h in $harnesses; do
	run_one "$h" &
	running=$((running + 1))
	if [ "$running" -ge "$parallel" ]; then
		wait
		running=0
	fi
done
wait

status=0
printf '%-12s %12s %10s  %s\n' harness executions exec/s result
for h in $harnesses; do
	cat "$work/$h.row"
	[ "$(cat "$work/$h.status" 2>/dev/null)" = ok ] || status=1
done

if [ "$status" -eq 0 ]; then
	rm -rf "$work"
else
	echo "kept $work (crashing inputs and logs)"
fi
exit "$status"
