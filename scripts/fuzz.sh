#!/usr/bin/env bash
# Runs every Go fuzz target of every module for FUZZTIME each (default 5s):
# `make fuzz` (longer, FUZZTIME=1m) and, briefly, `make test`. Go fuzzing
# takes one target of one package at a time, so this finds the packages
# with Fuzz functions and loops over their targets. A crasher fails the run
# and is written by Go to the package's testdata/fuzz/<Target>/, where it
# stays (commit it) and is replayed by every plain `go test` from then on.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime ends while a starved worker is mid-call
# (golang/go#75804, fixed in Go 1.27): nothing was found and no input is
# written. Such a run, and only such a run (no "Failing input written", no
# panic, no test failure besides that line), is retried once; a second one
# fails like any other.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-5s}"
modules=(shared mcpserver webclient scripts)
failed=()
count=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# deadline_flake reports whether the failed run logged in $log is the
# coordinator's shutdown race and nothing else.
deadline_flake() {
	grep -q 'context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"
}

# run fuzzes one target, retrying once after a bare deadline flake.
run() {
	local dir="$1" target="$2" attempt
	for attempt in 1 2; do
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" 2>&1 | tee "$log"; then
			return 0
		fi
		if [ "$attempt" = 1 ] && deadline_flake; then
			echo "fuzz: $target: Go's fuzztime shutdown race (golang/go#75804), no input found; running it again"
			continue
		fi
		return 1
	done
	return 1
}

for mod in "${modules[@]}"; do
	# Directories holding a test file that declares a fuzz target.
	mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' "$mod" | xargs -r -n1 dirname | sort -u)
	for dir in "${dirs[@]}"; do
		mapfile -t targets < <(grep -hoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u)
		for target in "${targets[@]}"; do
			count=$((count + 1))
			echo "fuzz: ./$dir $target for $fuzztime"
			if ! run "./$dir" "$target"; then
				failed+=("./$dir $target")
			fi
		done
	done
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: ${#failed[@]} of $count targets failed (crashers are under each package's testdata/fuzz/):"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: $count targets ran for $fuzztime each without a failure"
