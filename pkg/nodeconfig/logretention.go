/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"slices"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// DefaultLogMaxFiles is how many rotated files of a service's log the
// agent keeps when the WindowsNodeConfig says nothing (as the API's
// default).
const DefaultLogMaxFiles = 10

// logRetention is what the agent prunes: the folder of every service
// that writes its log to LogPath (kube-log-runner removes its rotated
// files by age only, and containerd and windows_exporter rotate nothing),
// and the agent's own log folder, by rotation's maxFiles and maxAgeDays
// (defaults applied).
func logRetention(services []wicdapi.Service, hosted []hostedService, rotation wmcov1alpha1.LogRotationSpec) *wicdapi.LogRetention {
	logs := []string{wicdapi.AgentLogPath}
	for _, svc := range services {
		if logsToLogPath(svc, hosted) {
			logs = append(logs, LogPath(svc.Name))
		}
	}
	slices.Sort(logs)
	return &wicdapi.LogRetention{
		MaxFiles:   int(rotation.MaxFiles),
		MaxAgeDays: int(rotation.MaxAgeDays),
		Logs:       slices.Compact(logs),
	}
}
