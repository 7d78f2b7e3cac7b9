#!/usr/bin/env bash
# System packages that some tests use but do not require:
#   chromium  headless browser for the HTML-report rendering test
#             (tests/test_evaluation/test_eval_report.py skips without it)
# Idempotent: installs only what is missing. Never fails the caller: without
# root, apt-get or network the affected tests are skipped with a reason.
set -u
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  echo "[system deps] chromium present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[system deps] no apt-get: not installing ${missing[*]} (tests that need it are skipped)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "[system deps] not root and no password-less sudo: not installing ${missing[*]} (tests that need it are skipped)"
    exit 0
  fi
fi
echo "[system deps] installing ${missing[*]} (apt-get, a minute or two)"
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get install -y -qq "${missing[@]}" >/tmp/segreg-apt.log 2>&1 \
   || { $SUDO apt-get update -qq >>/tmp/segreg-apt.log 2>&1 \
        && $SUDO apt-get install -y -qq "${missing[@]}" >>/tmp/segreg-apt.log 2>&1; }; then
  echo "[system deps] installed ${missing[*]}"
else
  echo "[system deps] could not install ${missing[*]} (see /tmp/segreg-apt.log); tests that need it are skipped"
fi
exit 0
