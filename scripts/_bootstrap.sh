# Sourced by scripts/serve and scripts/test: make sure .venv exists and holds the
# project as it is in pyproject.toml. Idempotent; the second run costs one hash.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-}"

if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON_BIN="$candidate"
      break
    fi
  done
fi
if [ -z "$PYTHON_BIN" ]; then
  echo "smsnodes-hub needs Python 3.11 or newer on PATH (or set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtual environment in .venv ..." >&2
  "$PYTHON_BIN" -m venv "$VENV"
fi

# Reinstall only when the dependency list changed; code changes need nothing (editable install).
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing smsnodes-hub and its dependencies into .venv ..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]" >&2
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
