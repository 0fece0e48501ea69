package core

import "github.com/openwmco/wmco/pkg/cluster"

// Config is what every controller knows about where the operator runs.
type Config struct {
	// Namespace of the operator: the windows-instances ConfigMap, the
	// default SSH key Secret and the leader Lease live there.
	Namespace string
	// Platform is OpenShift or plain Kubernetes.
	Platform cluster.Platform
}
