#!/usr/bin/env bash
# tools/asan.sh: the C core and the TensorFlow-free part of the Python suite
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   1. builds and runs the C tests with ASan+UBSan (make -C csrc asan; leaks on);
#   2. builds the extension with PYREG_SANITIZE=1 and runs the Python tests
#      that do not need TensorFlow, with libasan preloaded into CPython
#      (ASAN_OPTIONS=detect_leaks=0: CPython itself leaks at exit);
#   3. rebuilds the normal extension in place, so the tree is left usable.
#
# Steps 1 and 2 work on a temporary copy of the sources, so that the tree (and
# anyone using its extension meanwhile) never sees a sanitized build.
# Exits nonzero on any failure. Environment:
#   PYTHON           interpreter to use (default: python, else python3, from PATH)
#   CC               C compiler (default gcc)
#   ASAN_TESTS       Python test files to run (default: the list below, those that exist)
#   PYTEST_ARGS      extra pytest arguments
#   KEEP_ASAN_TMP=1  keep the temporary copy (its path is printed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$(command -v python || command -v python3 || true)}"
CC="${CC:-gcc}"
[ -n "$PY" ] || { echo "asan.sh: no python found (set PYTHON)" >&2; exit 2; }
command -v "$CC" >/dev/null || { echo "asan.sh: no C compiler '$CC'" >&2; exit 2; }

LIBASAN="$("$CC" -print-file-name=libasan.so)"
[ -f "$LIBASAN" ] || { echo "asan.sh: libasan.so not found ($CC -print-file-name gave '$LIBASAN')" >&2; exit 2; }

T0=$(date +%s)
step() { echo; echo "=== asan.sh [$(( $(date +%s) - T0 ))s] $*"; }

# build_ext DIR LOG [ENV=VALUE...]: builds the extension in place in DIR; the
# log is shown only on failure (setuptools is chatty).
build_ext() {
    local dir="$1" log="$2"
    shift 2
    if ! (cd "$dir" && env "$@" CC="$CC" "$PY" setup.py -q build_ext --inplace >"$log" 2>&1); then
        cat "$log" >&2
        echo "asan.sh: building the extension in $dir failed" >&2
        return 1
    fi
    grep -E "error|warning: " "$log" | grep -v -i -E "setuptools|deprecat" || true
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/pyreg-asan.XXXXXX")"
cleanup() {
    if [ "${KEEP_ASAN_TMP:-0}" = 1 ]; then echo "asan.sh: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------ the copy
step "copying the sources to $TMP/src"
SRC="$TMP/src"
mkdir -p "$SRC"
for item in pyreg csrc tests setup.py pyproject.toml README.md; do
    [ -e "$item" ] && cp -R "$item" "$SRC/"
done
rm -rf "$SRC/csrc/tests/bin"
find "$SRC" \( -name '__pycache__' -o -name '*.so' -o -name '*.o' -o -name '*.pyd' \) -prune -exec rm -rf {} +

# ------------------------------------------------- 1. C tests under ASan
step "1/3 C tests with ASan+UBSan"
if make -C "$SRC/csrc" -n asan >/dev/null 2>&1; then
    make -C "$SRC/csrc" asan CC="$CC"
else
    echo "csrc/Makefile has no 'asan' target: building the C tests directly"
    shopt -s nullglob
    tests=("$SRC"/csrc/tests/test_*.c)
    [ ${#tests[@]} -gt 0 ] || { echo "asan.sh: no C tests in csrc/tests" >&2; exit 1; }
    mkdir -p "$TMP/cbin"
    fail=0
    for t in "${tests[@]}"; do
        bin="$TMP/cbin/$(basename "${t%.c}")"
        "$CC" -std=c11 -O1 -g -fopenmp -Wall -Wextra -fsanitize=address,undefined -fno-omit-frame-pointer \
            -I"$SRC/csrc" -o "$bin" "$t" "$SRC"/csrc/*.c -lm
        echo "== $bin (asan)"
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$bin" || fail=1
    done
    [ $fail = 0 ] || { echo "asan.sh: C tests failed under ASan" >&2; exit 1; }
fi

# ------------------------------------ 2. Python tests, sanitized extension
step "2/3 sanitized extension and the TensorFlow-free Python tests"
build_ext "$SRC" "$TMP/build-asan.log" PYREG_SANITIZE=1
sos=("$SRC"/pyreg/_core*.so)
SO="${sos[0]}"
[ -f "$SO" ] || { echo "asan.sh: the sanitized build produced no extension" >&2; exit 1; }
nm -D "$SO" | grep __asan >/dev/null || ldd "$SO" | grep libasan >/dev/null \
    || { echo "asan.sh: $SO is not built with ASan" >&2; exit 1; }

# Stand-ins that make any `pytest.importorskip("tensorflow"/"tf_keras")` skip:
# TensorFlow is never loaded into the sanitized interpreter.
mkdir -p "$TMP/block"
for mod in tensorflow tf_keras keras; do
    echo "raise ModuleNotFoundError('not under tools/asan.sh: TensorFlow is kept out of the sanitized run', name='$mod')" \
        > "$TMP/block/$mod.py"
done

DEFAULT_TESTS="test_robustness.py test_saving.py test_gradcheck.py test_callbacks.py test_fuzz.py"
files=()
for f in ${ASAN_TESTS:-$DEFAULT_TESTS}; do
    f="${f#tests/}"
    if [ -f "$SRC/tests/$f" ]; then files+=("tests/$f"); else echo "(no tests/$f: skipped)"; fi
done
[ ${#files[@]} -gt 0 ] || { echo "asan.sh: none of the Python test files exist" >&2; exit 1; }

export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:handle_segv=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
(
    cd "$SRC"
    export LD_PRELOAD="$LIBASAN" PYTHONPATH="$SRC:$TMP/block" PYTHONMALLOC=malloc PYTHONFAULTHANDLER=1
    export PYREG_NO_TF=1  # the TensorFlow comparisons skip here, and only here
    # (errexit does not apply inside a subshell on the left of ||: hence &&)
    "$PY" -c "import pyreg; assert pyreg._core.__file__.startswith('$SRC/'), pyreg._core.__file__" </dev/null &&
    # shellcheck disable=SC2086
    "$PY" -m pytest -q -p no:cacheprovider "${files[@]}" ${PYTEST_ARGS:-}
) || status=$?
unset ASAN_OPTIONS UBSAN_OPTIONS

# --------------------------------------------- 3. the normal extension again
step "3/3 rebuilding the normal extension in place"
build_ext "$ROOT" "$TMP/build.log" PYREG_SANITIZE=
for so in "$ROOT"/pyreg/_core*.so; do
    if [ -f "$so" ] && nm -D "$so" | grep __asan >/dev/null; then  # a sanitized build left in the tree: replace it
        echo "$so is a sanitized build: rebuilding it"
        rm -f "$so"
        build_ext "$ROOT" "$TMP/build.log" PYREG_SANITIZE=
    fi
done
PYTHONPATH="$ROOT" "$PY" -c "import pyreg; pyreg.Sequential" </dev/null

if [ "$status" != 0 ]; then
    step "FAILED: the Python tests under ASan+UBSan exited with status $status"
    exit "$status"
fi
step "done: all passed"
