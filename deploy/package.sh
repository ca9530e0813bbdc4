#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb:
#   target/debian/lb-director_VERSION_amd64.deb   lb-director, lbctl, unit, example, man pages, completions
#   target/debian/lb-agent_VERSION_amd64.deb      lb-agent, unit, example, man page, completions
# The man pages and completions are written from the binaries' own clap definitions
# (deploy/cli-docs) into target/release/cli-docs, where the packages' assets take them.
# Binaries go in stripped.
# What goes where is in [package.metadata.deb] of director/Cargo.toml and realserver/Cargo.toml;
# the maintainer scripts are in deploy/debian/. Installs cargo-deb (crates.io) and dpkg-dev
# (dpkg-shlibdeps, for the libc dependency) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dpkg-shlibdeps >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev
fi
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p lb-director -p lb-realserver --bins
rm -rf "$target/release/cli-docs"
cargo run --release --locked -q -p lb-cli-docs -- "$target/release/cli-docs"
# Debian policy wants man pages gzipped; cargo-deb leaves files under target/ as they are.
# -n: no name or time stamp inside, so the same pages give the same bytes.
gzip -9n "$target"/release/cli-docs/man/man*/*
# --strip: the release profile keeps line tables for backtraces; the packages do without them.
# LB_DEB_MAINTAINER="Name <address>" replaces the placeholder Maintainer of the metadata.
deb=(cargo deb --no-build --locked --strip)
if [ -n "${LB_DEB_MAINTAINER:-}" ]; then
  deb+=(--maintainer "$LB_DEB_MAINTAINER")
fi
"${deb[@]}" -p lb-director
"${deb[@]}" -p lb-realserver
ls -1 "$target"/debian/lb-director_*.deb "$target"/debian/lb-agent_*.deb
