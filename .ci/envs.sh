# Shared by .ci/colab and .ci/compat (sourced): environments that play a platform, built once, kept in $CACHE, and
# put back as built after each run. Needs MAIN (the project's .venv python), CACHE and WORK set by the caller.

python_for() {   # the newest interpreter of version $1 here: on PATH, else pyenv's
  local v=$1 p
  for p in "$(command -v "python$v" 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.')))" 2>/dev/null; then
      echo "$p"; fi
  done | tail -n 1
}

# A student's pip: none of this machine's pip settings (its constraint file, local indexes), only its CA bundle.
student_pip_env() {
  local cert=${PIP_CERT:-}
  [ -z "$cert" ] && [ -f /etc/ssl/certs/ca-certificates.crt ] && cert=/etc/ssl/certs/ca-certificates.crt
  echo env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_NO_INDEX \
    PIP_CONFIG_FILE=/dev/null ${cert:+PIP_CERT=$cert} PIP_DISABLE_PIP_VERSION_CHECK=1
}
STUDENT=$(student_pip_env)

build_env() {   # build_env FREEZE PYVERSION DEST PACKAGE...: DEST gets FREEZE's versions of these packages
  local freeze=$1 pyv=$2 dest=$3 py tmp
  shift 3
  py=$(python_for "$pyv")
  [ -n "$py" ] || { echo "no Python $pyv on this machine (pyenv install $pyv)"; return 1; }
  tmp="$dest.building.$$"
  rm -rf "$tmp"
  echo "building $(basename "$dest") with $py (once; kept in $CACHE)"
  "$py" -m venv "$tmp"
  if grep -qE '^pip==' "$freeze"; then "$tmp/bin/python" -m pip install -q "$(grep -E '^pip==' "$freeze")"; fi
  "$MAIN" scripts/platform_check.py constraints "$freeze" > "$tmp/platform.txt"
  "$tmp/bin/python" -m pip install -q -c "$tmp/platform.txt" "$@"
  "$tmp/bin/python" -m pip freeze --all > "$tmp/baseline.txt"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

env_key() {   # env_key FREEZE PYVERSION PACKAGE...: a name for what an environment is built from
  { "$MAIN" scripts/platform_check.py constraints "$1"; grep -E '^pip==' "$1"; shift; echo "$@"; } \
    | sha256sum | cut -c1-12
}

reset_env() {   # uninstall what a run added; rebuild if anything the environment was built with changed
  local env=$1
  "$env/bin/python" -m pip freeze --all > "$WORK/now.txt"
  local extra
  extra=$("$MAIN" - "$env/baseline.txt" "$WORK/now.txt" <<'PY'
import sys
sys.path.insert(0, "scripts")
from platform_check import read_freeze
base, now = read_freeze(sys.argv[1]), read_freeze(sys.argv[2])
moved = [n for n in base if now.get(n, "missing") != base[n]]
print("REBUILD" if moved else " ".join(n for n in now if n not in base))
PY
)
  if [ "$extra" = REBUILD ]; then return 1; fi
  if [ -n "$extra" ]; then
    # shellcheck disable=SC2086
    "$env/bin/python" -m pip uninstall -q -y $extra
  fi
}


forget_others() {   # forget_others DEST: remove environments kept for what DEST's platform was built from before
  local dest=$1 other
  for other in "${dest%-*}"-????????????; do
    if [ -d "$other" ] && [ "$other" != "$dest" ] && [[ "$(basename "$other")" =~ -[0-9a-f]{12}$ ]]; then
      echo "removing $(basename "$other") (built from other versions; $(du -sh "$other" | cut -f1))"
      rm -rf "$other"
    fi
  done
}
