#!/bin/sh
# Writes deploy/kubernetes/prometheusrule.yaml: rules/badgateway.rules.yml
# wrapped in a Prometheus Operator PrometheusRule, its text unchanged but
# indented under `spec:` (comments included). Run it after every change to
# the rules; tests/deploy.rs fails while the two differ.
#
#   deploy/kubernetes/generate-prometheusrule.sh          # rewrite the file
#   deploy/kubernetes/generate-prometheusrule.sh -        # print it instead
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rules="$here/../../rules/badgateway.rules.yml"
out="$here/prometheusrule.yaml"

generate() {
  cat <<'HEADER'
# GENERATED from rules/badgateway.rules.yml by
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
HEADER
  # Two spaces before every line that is not empty: the rules file becomes
  # the value of `spec`, and its block scalars keep their relative indent.
  sed 's/^./  &/' "$rules"
}

if [ "${1:-}" = "-" ]; then
  generate
else
  generate > "$out.tmp"
  mv "$out.tmp" "$out"
fi
