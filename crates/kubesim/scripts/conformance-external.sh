#!/usr/bin/env bash
# Runs the conformance suite the way it runs against a real cluster: the
# emulator is started as a separate process (`kubesim serve`) and the suite
# reaches it only through RELBOT_TEST_KUBECONFIG, so the external-cluster code
# of the test helper (namespace per test, cleanup, no emulator-only calls) is
# exercised. Extra arguments go to `cargo nextest run`.
#
# To run the suite against a real cluster instead, skip this script:
#   RELBOT_TEST_KUBECONFIG=~/.kube/config cargo nextest run -p kubesim --test conformance
set -euo pipefail
cd "$(dirname "$0")/../../.."

cargo build -p kubesim --bin kubesim
bin="${CARGO_TARGET_DIR:-target}/debug/kubesim"
dir="$(mktemp -d)"
"$bin" serve --port 0 --kubeconfig-out "$dir/kubeconfig" >"$dir/url" 2>"$dir/log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  [ -s "$dir/kubeconfig" ] && break
  sleep 0.1
done
if [ ! -s "$dir/kubeconfig" ]; then
  echo "kubesim serve did not start:" >&2
  cat "$dir/log" >&2
  exit 1
fi
echo "kubesim serving at $(cat "$dir/url") (pid $pid)"

RELBOT_TEST_KUBECONFIG="$dir/kubeconfig" cargo nextest run -p kubesim --test conformance --no-fail-fast "$@"
