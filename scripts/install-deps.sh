#!/usr/bin/env bash
# Install the system tools that regkit's fixtures, tests and benchmarks use:
# the real registry (Debian's docker-registry, Distribution 2.8), skopeo,
# umoci, containerd (ctr), pigz, zstd, hyperfine, openssl, python3, curl and
# htpasswd (apache2-utils, for the push tests' bcrypt password file).
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

if [ ${#missing[@]} -eq 0 ]; then
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
echo "install-deps: done"
