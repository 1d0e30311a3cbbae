#!/bin/sh
# Writes deploy/kubernetes/prometheusrule.yaml: every file of rules/
# (rules/*.rules.yml, by name) in one Prometheus Operator PrometheusRule,
# their groups one list under `spec.groups`, each file's text unchanged but
# indented (comments included). Run it after every change to the rules;
# tests/deploy fails while the two differ.
#
#   deploy/kubernetes/generate-prometheusrule.sh          # rewrite the file
#   deploy/kubernetes/generate-prometheusrule.sh -        # print it instead
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rules="$here/../../rules"
out="$here/prometheusrule.yaml"

generate() {
  cat <<'HEADER'
# GENERATED from rules/*.rules.yml by
# deploy/kubernetes/generate-prometheusrule.sh: do not edit, regenerate.
#
# The Prometheus Operator loads it into every Prometheus whose
# ruleSelector matches its labels (kube-prometheus-stack: add
# `release: <its release name>`).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: badgateway
  namespace: badgateway
  labels:
    app.kubernetes.io/name: badgateway-exporter
    app.kubernetes.io/part-of: badgateway-exporter
spec:
  groups:
HEADER
  # Each file: its lines but its `groups:` key, two spaces before every
  # line that is not empty, so its groups join the one list of `spec` and
  # block scalars keep their relative indent. The C locale sorts the names
  # as the tests and Prometheus's glob do.
  for f in $(LC_ALL=C ls "$rules"/*.rules.yml); do
    printf '  # ----- rules/%s\n' "$(basename "$f")"
    sed -e '/^groups:$/d' -e 's/^./  &/' "$f"
  done
}

if [ "${1:-}" = "-" ]; then
  generate
else
  generate > "$out.tmp"
  mv "$out.tmp" "$out"
fi
