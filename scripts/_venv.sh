# Shared by scripts/test and scripts/demo: find a CPython and give it a
# virtual environment with this project installed. Sourced, not run.

# python_for VERSION: path of a CPython VERSION (pyenv's first, then PATH).
python_for() {
  local version=$1 root candidate
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in "$root"/versions/"$version".*/bin/python"$version"; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  command -v "python$version" 2>/dev/null && return 0
  echo "error: CPython $version not found (looked in $root/versions and on PATH)" >&2
  return 1
}

# ensure_venv VERSION NAME EXTRAS: prints the venv's python, (re)installing
# the project when the venv is new or its build inputs (pyproject.toml,
# setup.py, the accelerator's C source) changed since.
ensure_venv() {
  local version=$1 name=$2 extras=$3 python venv stamp want
  python=$(python_for "$version") || return 1
  venv=".venv/$name"
  stamp="$venv/.installed"
  want="$(cat pyproject.toml setup.py src/async_hooks/_speedups.c | sha256sum | cut -d' ' -f1) $extras"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "--- installing into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".$extras" >&2
    echo "$want" >"$stamp"
  fi
  echo "$venv/bin/python"
}

# ensure_accelerator PYTHON: rebuilds the compiled accelerator in place when
# the interpreter cannot use it (not built, or built from other sources than
# the ones in the tree: docs/accelerator.md), and fails if it still cannot.
ensure_accelerator() {
  local python=$1
  local check='import sys, async_hooks._accelerator as a; sys.exit(a.speedups is None)'
  env -u ASYNC_HOOKS_PURE_PYTHON "$python" -c "$check" && return 0
  echo "--- building the accelerator for $python" >&2
  "$python" -m pip install -q --disable-pip-version-check --no-deps -e . >&2
  env -u ASYNC_HOOKS_PURE_PYTHON "$python" -c "$check" && return 0
  env -u ASYNC_HOOKS_PURE_PYTHON "$python" -c \
    'import async_hooks._accelerator as a; print("error: no accelerator:", a.reason)' >&2
  return 1
}
