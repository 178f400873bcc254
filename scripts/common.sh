# shellcheck shell=bash
# Shared by scripts/test and scripts/demo (sourced, not run): finds the repository root and
# makes sure the Debian packages brook builds with are installed.

# The Debian packages needed to build and test brook.
BROOK_DEB_PACKAGES=(build-essential cmake pkg-config libuv1-dev librdkafka-dev librocksdb-dev libcmocka-dev)

# The repository root (the parent of scripts/).
brook_repo_root() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  dirname "$here"
}

# Prints the packages of "$@" that are not installed, one per line.
brook_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

# Installs whatever of BROOK_DEB_PACKAGES is missing: directly as root, through sudo when it
# needs no password, otherwise says what to run and fails.
brook_ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "note: not a Debian-based system (no dpkg-query); assuming these are installed:" \
      "${BROOK_DEB_PACKAGES[*]}" >&2
    return 0
  fi
  local missing=()
  mapfile -t missing < <(brook_missing_packages "${BROOK_DEB_PACKAGES[@]}")
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  local install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      echo "error: these Debian packages are missing: ${missing[*]}" >&2
      echo "install them with:" >&2
      echo "  sudo apt-get update && sudo $install_cmd" >&2
      return 1
    fi
  fi
  echo "==> installing missing packages: ${missing[*]}" >&2
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}
