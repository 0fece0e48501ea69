// Package prometheus holds the operator's alerting and recording rules:
// rules.yaml, a PrometheusRule, which kustomize applies from this folder
// and the operator keeps in its namespace where the Prometheus
// Operator's PrometheusRule CRD exists (controllers/servingcert).
package prometheus

import _ "embed"

// Rules is rules.yaml.
//
//go:embed rules.yaml
var Rules []byte
