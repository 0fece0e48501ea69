/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"slices"
	"strings"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// DefaultLogMaxFiles is how many rotated files of a service's log the
// agent keeps when the WindowsNodeConfig says nothing (as the API's
// default).
const DefaultLogMaxFiles = 10

// logRetention is what the agent prunes: the folder of every service
// that writes its log to LogPath (kube-log-runner removes its rotated
// files by age only), and the agent's own log folder, by rotation's
// maxFiles and maxAgeDays (defaults applied). The logs of the programs
// that write their own and rotate nothing (containerd, windows_exporter)
// the agent also rotates, at maxFileSizeMiB as kube-log-runner rotates
// the others: it copies and empties them.
func logRetention(services []wicdapi.Service, hosted []hostedService, rotation wmcov1alpha1.LogRotationSpec) *wicdapi.LogRetention {
	logs := []string{wicdapi.AgentLogPath}
	var own []string
	for _, svc := range services {
		if logsToLogPath(svc, hosted) {
			logs = append(logs, LogPath(svc.Name))
			if !underLogRunner(svc, hosted) {
				own = append(own, LogPath(svc.Name))
			}
		}
	}
	slices.Sort(logs)
	slices.Sort(own)
	r := &wicdapi.LogRetention{
		MaxFiles:   int(rotation.MaxFiles),
		MaxAgeDays: int(rotation.MaxAgeDays),
		Logs:       slices.Compact(logs),
	}
	if len(own) > 0 {
		r.CopyTruncate, r.MaxFileSizeMiB = own, int(rotation.MaxFileSizeMiB)
	}
	return r
}

// underLogRunner reports whether a service's program runs under
// kube-log-runner, itself or under the service host.
func underLogRunner(svc wicdapi.Service, hosted []hostedService) bool {
	runner := func(binary string) bool {
		return strings.HasSuffix(strings.ToLower(binary), `\`+payload.KubeLogRunnerPath)
	}
	if runner(svc.Binary) {
		return true
	}
	return slices.ContainsFunc(hosted, func(h hostedService) bool { return h.name == svc.Name && runner(h.cfg.Binary) })
}
