#!/usr/bin/env bash
# Installs everything apmae needs on Debian 12, from scratch; quiet and quick
# when all is already there. Debian packages via apt; the tree-sitter-java
# grammar and the tokenizer test oracle via npm into the git-ignored
# third_party/ (no third-party source is committed).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev libopenblas-openmp-dev libhdf5-dev hdf5-tools libcjson-dev libpcre2-dev libarchive-dev libpng-dev zlib1g-dev
  libtree-sitter-dev libxgboost-dev libcmocka-dev libopenmpi-dev openmpi-bin
  openjdk-17-source python3-torch python3-numpy python3-h5py python3-sklearn umap-learn r-cran-dbscan nodejs
  chromium
)
# name@version, pinned so tests see the same grammar and oracle everywhere.
NPM_PACKAGES=(
  tree-sitter-java@0.23.5
  @huggingface/tokenizers@0.2.0
  gpt-3-encoder@1.1.4
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p third_party
npm_missing=()
for spec in "${NPM_PACKAGES[@]}"; do
  name=${spec%@*}; want=${spec##*@}
  have=$(node -p "require('./third_party/node_modules/$name/package.json').version" 2>/dev/null || true)
  [ "$have" = "$want" ] || npm_missing+=("$spec")
done
if [ ${#npm_missing[@]} -gt 0 ]; then
  echo "setup: installing npm packages into third_party/: ${npm_missing[*]}" >&2
  [ -f third_party/package.json ] || echo '{"name":"apmae-third-party","private":true}' > third_party/package.json
  npm install --prefix third_party --no-audit --no-fund --loglevel=error --ignore-scripts "${npm_missing[@]}" >/dev/null
fi
