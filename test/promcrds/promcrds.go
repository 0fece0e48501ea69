// Package promcrds pins the Prometheus Operator CRDs whose objects the
// operator writes, for tests on the local control plane: the API server
// then validates the operator's ServiceMonitors and PrometheusRule
// against the real schema.
package promcrds

import (
	"context"

	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/test/localcluster"
)

// Version of github.com/prometheus-operator/prometheus-operator the CRDs
// come from (example/prometheus-operator-crd).
const Version = "v0.93.0"

// ServiceMonitor and PrometheusRule are the CRDs' files, relative to the
// repository root.
const (
	ServiceMonitor = "test/promcrds/monitoring.coreos.com_servicemonitors.yaml"
	PrometheusRule = "test/promcrds/monitoring.coreos.com_prometheusrules.yaml"
)

// Install creates (or updates) the CRDs and waits until they are served.
func Install(ctx context.Context, cfg *rest.Config) error {
	return localcluster.InstallCRDFiles(ctx, cfg, ServiceMonitor, PrometheusRule)
}
