/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"testing"

	. "github.com/onsi/gomega"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Every service that logs under C:\var\log\<service>\ and the agent are
// pruned, by the config's maxFiles and maxAgeDays, defaults applied; the
// logs of the programs that write their own (not under kube-log-runner)
// are copied and emptied at maxFileSizeMiB.
func TestLogRetention(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxAgeDays: 3, MaxFiles: 4, MaxFileSizeMiB: 7}
	plan := mustRender(t, in)
	g.Expect(plan.LogRetention).To(Equal(&wicdapi.LogRetention{MaxFiles: 4, MaxAgeDays: 3, Logs: []string{
		`C:\var\log\containerd\containerd.log`,
		`C:\var\log\csi-proxy\csi-proxy.log`,
		`C:\var\log\hybrid-overlay-node\hybrid-overlay-node.log`,
		`C:\var\log\kube-proxy\kube-proxy.log`,
		`C:\var\log\kubelet\kubelet.log`,
		`C:\var\log\wicd\wicd.log`,
		`C:\var\log\windows_exporter\windows_exporter.log`,
	}, CopyTruncate: []string{
		`C:\var\log\containerd\containerd.log`,
		`C:\var\log\windows_exporter\windows_exporter.log`,
	}, MaxFileSizeMiB: 7}))
	for _, l := range plan.LogRetention.Logs {
		if l != wicdapi.AgentLogPath { // the agent makes its own folder
			g.Expect(plan.Directories).To(ContainElement(parentDir(l)), "the folder of %s is created", l)
		}
	}

	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{}
	plan = mustRender(t, in)
	g.Expect(plan.LogRetention.MaxFiles).To(Equal(DefaultLogMaxFiles))
	g.Expect(plan.LogRetention.MaxAgeDays).To(Equal(DefaultLogMaxAgeDays))
	g.Expect(plan.LogRetention.MaxFileSizeMiB).To(Equal(DefaultLogMaxFileSizeMiB))
}

func parentDir(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '\\' {
			return p[:i]
		}
	}
	return p
}
