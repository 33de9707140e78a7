#!/usr/bin/env bash
# Usage: apt-install.sh COMMAND PACKAGE...
# Installs the Debian packages unless COMMAND is already on the PATH. One
# install at a time on this machine (a lock in the user cache folder): two
# copies of the test script on a fresh machine would otherwise race for apt's
# locks, and one would fail. apt also waits for a lock another program holds.
set -euo pipefail
check="$1"
shift
command -v "$check" >/dev/null && exit 0
lock="${XDG_CACHE_HOME:-$HOME/.cache}/integrationhub/apt.lock"
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock -w 1800 9
# The other copy may have installed it while this one waited.
command -v "$check" >/dev/null && exit 0
echo "installing $* (Debian)" >&2
sudo_=""
[[ "$(id -u)" != 0 ]] && sudo_="sudo"
$sudo_ apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
command -v "$check" >/dev/null
