#!/usr/bin/env bash
# Runs every Go fuzz target of every module for FUZZTIME each (default 5s):
# `make fuzz` (longer, FUZZTIME=1m) and, briefly, `make test`. Go fuzzing
# takes one target of one package at a time, so this finds the packages
# with Fuzz functions and loops over their targets. A crasher fails the run
# and is written by Go to the package's testdata/fuzz/<Target>/, where it
# stays (commit it) and is replayed by every plain `go test` from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-5s}"
modules=(shared mcpserver webclient scripts)
failed=()
count=0

for mod in "${modules[@]}"; do
	# Directories holding a test file that declares a fuzz target.
	mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' "$mod" | xargs -r -n1 dirname | sort -u)
	for dir in "${dirs[@]}"; do
		mapfile -t targets < <(grep -hoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u)
		for target in "${targets[@]}"; do
			count=$((count + 1))
			echo "fuzz: ./$dir $target for $fuzztime"
			if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir"; then
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
