#!/usr/bin/env bash
# Prints the path of a Python interpreter of the Lambda runtime's minor version (default 3.13).
# Looks on PATH first, then in pyenv; exits 1 with a clear message when there is none.
set -euo pipefail
want="${1:-3.13}"
is_wanted() { [ -x "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; }

for candidate in "$(command -v "python$want" 2>/dev/null || true)" "$(command -v python3 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && is_wanted "$candidate"; then echo "$candidate"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root)"
  for dir in $(ls -d "$root/versions/$want".* 2>/dev/null | sort -V -r); do
    if is_wanted "$dir/bin/python"; then echo "$dir/bin/python"; exit 0; fi
  done
fi
echo "error: Python $want is required (the Lambda runtime is python$want) but none was found." >&2
echo "       Install it (for example 'pyenv install $want') or put python$want on PATH." >&2
exit 1
