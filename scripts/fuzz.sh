#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of the webhook body parser and the
# gateway spool's log reader: neither may panic or loop, whatever the bytes (fuzz/).
#
#   FUZZ_SECONDS=60   how long each target runs (make fuzz)
#   FUZZ_RUNS=N       instead, exactly N inputs per target, mutated from the seed corpus with
#                     libFuzzer's seed 1: a bounded run of known length, which is how CI runs it
#                     (runs still differ a little: the coverage reached is not bit for bit
#                     the same each time)
#
# cargo-fuzz (pinned) is installed into tools/cargo unless it is on PATH. It runs without a
# sanitizer (-s none): the machine's one toolchain is stable, and AddressSanitizer needs nightly;
# the code under test has no unsafe, so coverage and the asserts are what matter. An input that
# panics, or runs over 10 s (a loop), is kept in fuzz/artifacts/TARGET/ and the script fails:
# replay it with `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE` in fuzz/.
set -euo pipefail

CARGO_FUZZ_VERSION="0.13.2"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    export PATH="$root/tools/cargo/bin:$PATH"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io into tools/cargo"
        cargo install --quiet --locked --root "$root/tools/cargo" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
    fi
fi

python3 seed.py
if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS" -seed=1)
    what="$FUZZ_RUNS inputs from seed 1"
else
    limit=(-max_total_time="${FUZZ_SECONDS:-60}")
    what="${FUZZ_SECONDS:-60} s"
fi
cargo fuzz build -s none
for target in parse_delivery spool_log; do
    echo "fuzz: $target, $what"
    started=$SECONDS
    # -timeout: an input that takes this long is a loop, and a failure.
    cargo fuzz run -s none "$target" "corpus/$target" -- "${limit[@]}" -timeout=10 \
        -print_final_stats=1 2>"corpus/$target.log" || {
        tail -40 "corpus/$target.log" >&2
        echo "fuzz: $target found an input that fails; it is in fuzz/artifacts/$target/" >&2
        exit 1
    }
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "corpus/$target.log")"
    coverage="$(grep -o 'cov: [0-9]*' "corpus/$target.log" | tail -1)"
    echo "fuzz: $target passed: ${runs:-?} inputs in $((SECONDS - started)) s, $coverage, no panic, no loop"
done
