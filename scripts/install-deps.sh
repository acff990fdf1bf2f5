#!/usr/bin/env bash
# Install the system tools that regkit's fixtures, tests and benchmarks use:
# the real registry (Debian's docker-registry, Distribution 2.8), skopeo,
# umoci, containerd (ctr), pigz, zstd, hyperfine, openssl, python3, curl,
# htpasswd (apache2-utils, for the push and serve tests' bcrypt password
# file), chromium (headless, for the test that reads du's HTML page back),
# wrk (the serve benchmark's HTTP load), and
# moto's S3 server from PyPI in .venv/ (the object-storage tests).
# Idempotent: runs apt-get only when a command is missing. Debian 12, as root
# (or through sudo when not root).
set -euo pipefail

# command -> Debian package
pairs=(
  docker-registry:docker-registry
  skopeo:skopeo
  umoci:umoci
  containerd:containerd
  ctr:containerd
  pigz:pigz
  zstd:zstd
  hyperfine:hyperfine
  openssl:openssl
  python3:python3
  curl:curl
  htpasswd:apache2-utils
  chromium:chromium
  wrk:wrk
)

missing=()
for pair in "${pairs[@]}"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    case " ${missing[*]:-} " in
      *" $pkg "*) ;;
      *) missing+=("$pkg") ;;
    esac
  fi
done

# moto's S3 server (PyPI), in the project's own venv: the object-storage
# tests and benchmarks start it on loopback.
install_moto() {
  local venv
  venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
  if [ -x "$venv/bin/moto_server" ]; then
    return 0
  fi
  echo "install-deps: installing moto[server] into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'moto[server]==5.2.5'
  [ -x "$venv/bin/moto_server" ] || { echo "install-deps: moto_server still missing" >&2; exit 1; }
}

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
  install_moto
  echo "install-deps: everything is installed"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"

for pair in "${pairs[@]}"; do
  cmd=${pair%%:*}
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd still missing" >&2; exit 1; }
done
install_moto
echo "install-deps: done"
