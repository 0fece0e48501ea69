/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// flanneld is no Windows service: its service runs the payload's
// wicd.exe as the service host with fixed arguments, and the plan writes
// flanneld's command line, under kube-log-runner, for it; its log folder
// is created and pruned as any service's.
func TestFlanneldRunsUnderTheServiceHost(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	flannelCase(withFlannel, 20348)(&in)
	plan := mustRender(t, in)
	payloadDir := `C:\k\payload\v1.37.2-wmco.1\`

	svc := serviceByName(t, plan, ServiceFlanneld)
	g.Expect(svc.Binary).To(Equal(payloadDir + "wicd.exe"))
	g.Expect(svc.Args).To(Equal([]string{"service-host", "--service", "flanneld"}))
	g.Expect(wicdapi.IsServiceHost(svc)).To(BeTrue())
	g.Expect(svc.Env).To(HaveKeyWithValue("NODE_NAME", in.NodeName))

	var cfg wicdapi.ServiceHostConfig
	var found bool
	for _, f := range plan.Files {
		if f.Path == wicdapi.ServiceHostConfigPath(ServiceFlanneld) {
			found = true
			g.Expect(f.Sensitive).To(BeFalse(), "paths and flags only")
			g.Expect(json.Unmarshal(f.Content, &cfg)).To(Succeed())
		}
	}
	g.Expect(found).To(BeTrue(), "the plan writes %s", wicdapi.ServiceHostConfigPath(ServiceFlanneld))
	g.Expect(cfg.Binary).To(Equal(payloadDir + "kube-log-runner.exe"))
	bin, args := UnwrapLogRunner(cfg.Args)
	g.Expect(bin).To(Equal(payloadDir + "flanneld.exe"))
	g.Expect(args).To(ContainElements("--kube-subnet-mgr", "--kubeconfig-file="+KubeconfigPath, "--net-config-path="+FlannelNetConfPath))
	g.Expect(runnerFlag(cfg.Args, "log-file")).To(Equal(LogPath(ServiceFlanneld)))

	g.Expect(plan.Directories).To(ContainElements(wicdapi.ServiceHostDir, LogDir(ServiceFlanneld)))
	g.Expect(plan.LogRetention.Logs).To(ContainElement(LogPath(ServiceFlanneld)))

	// No other service runs under the service host: each of them
	// connects to the service manager itself.
	for _, s := range plan.Services {
		if s.Name != ServiceFlanneld {
			g.Expect(wicdapi.IsServiceHost(s)).To(BeFalse(), s.Name)
		}
	}
}
