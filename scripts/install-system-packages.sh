#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages omnifuse uses, once, so that a bare image holding only
# python3 can run `make install` and `make test`: the venv module and Python headers, a C/C++
# toolchain and CMake (llama-cpp-python and webrtcvad build from source), the libraries that
# OpenCV's wheel loads (RapidOCR), TTS engines, the real datasets and Chromium for the web-page
# tests. Run it directly on an image that has no `make` yet.
set -euo pipefail

required=(
  python3-venv python3-dev build-essential cmake ca-certificates # build and install
  libgl1 libglib2.0-0                                            # opencv-python
  espeak-ng flite                                                # text to speech
  dataset-fashion-mnist pocketsphinx-testdata                    # real data
  wordnet                                                        # label hypernyms
)
# Debian ships Chromium as a package; Ubuntu only as a snap, which a container cannot run: there
# the browser tests skip themselves.
optional=(chromium fonts-liberation)

# Installed packages with what they provide (Ubuntu 24.04's libglib2.0-0t64 provides
# libglib2.0-0), read once. Checks read captured text: under pipefail, `cmd | grep -q` fails
# whenever grep closes the pipe before cmd has written everything.
present=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 2>/dev/null || true)

installed() {
  awk -v want="$1" '$1 == "ii" { for (i = 2; i <= NF; i++) { name = $i; sub(/[,:].*/, "", name)
    if (name == want) found = 1 } } END { exit !found }' <<<"$present"
}

available() {
  [[ "$(apt-cache policy "$1" 2>/dev/null || true)" == *"Candidate: "[0-9]* ]]
}

missing=()
for pkg in "${required[@]}" "${optional[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq

wanted=()
for pkg in "${missing[@]}"; do
  if [[ " ${optional[*]} " == *" $pkg "* ]] && ! available "$pkg"; then
    echo "note: $pkg is not available from apt here; the tests that need it will skip" >&2
    continue
  fi
  wanted+=("$pkg")
done
[ ${#wanted[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${wanted[*]}"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${wanted[@]}"
