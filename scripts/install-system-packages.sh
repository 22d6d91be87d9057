#!/usr/bin/env bash
# Installs the Debian packages omnifuse uses, once: TTS engines, the real datasets, a compiler for
# llama-cpp-python and Chromium for the web-page tests.
set -euo pipefail

packages=(espeak-ng flite dataset-fashion-mnist pocketsphinx-testdata build-essential cmake chromium)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
