// Package monitoring tests the operator's Prometheus rules
// (config/prometheus/rules.yaml) with promtool's rule unit tests, and the
// Grafana dashboard (config/grafana) against the metric names the
// operator and windows_exporter really export. A module of its own so
// that github.com/prometheus/prometheus does not move the operator's
// dependencies.
package monitoring
