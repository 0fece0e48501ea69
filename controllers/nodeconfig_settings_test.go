/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package controllers_test

import (
	"context"
	"crypto/sha1" //nolint:gosec // Windows names certificates by their SHA-1 thumbprint.
	"encoding/hex"
	"encoding/pem"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// On plain Kubernetes the same settings come from the WindowsNodeConfig:
// spec.proxy sets containerd's and the kubelet's proxy, spec.trustedCA
// imports the bundle of the trusted-ca ConfigMap into the host's Root
// store, and spec.containerd.registryMirrors become hosts.toml files; a
// CA removed from the bundle leaves the store.
func TestPlainKubernetesSettingsFromWindowsNodeConfig(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	caPEM, err := openshiftcrds.NewCAPEM("plain-corp-root")
	g.Expect(err).NotTo(HaveOccurred())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName},
		Data:       map[string]string{"bundle.pem": string(caPEM)},
	}
	ctrltest.HostFixture(t)
	g.Expect(ctrltest.Client.Create(ctx, cm)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), cm) })
	proxyURL := "http://proxy.example.test:3128"
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Proxy = &wmcov1.ProxySpec{HTTPProxy: proxyURL, HTTPSProxy: proxyURL, NoProxy: ".corp.example.test"}
		spec.TrustedCA = &wmcov1.TrustedCASpec{Key: "bundle.pem"}
		spec.Containerd.RegistryMirrors = []wmcov1.RegistryMirror{{Registry: "docker.io", Endpoints: []string{"https://mirror.example.test"}}}
	})
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 2*time.Minute)

	for _, s := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet} {
		st, err := h.Services.Query(ctx, s)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st.Config.Env).To(HaveKeyWithValue("HTTP_PROXY", proxyURL), s)
		g.Expect(st.Config.Env["NO_PROXY"]).To(ContainSubstring(".corp.example.test"), s)
	}
	block, _ := pem.Decode(caPEM)
	thumb := sha1.Sum(block.Bytes)
	isCA := MatchRegexp("(?i)^" + hex.EncodeToString(thumb[:]) + "$")
	g.Expect(h.RootCertificates()).To(ContainElement(isCA))
	data, err := h.Host.Disk().ReadFile(nodeconfig.ContainerdHostsDir + `\docker.io\hosts.toml`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(ContainSubstring("mirror.example.test"))

	// The CA leaves the bundle: the host's store loses it.
	other, err := openshiftcrds.NewCAPEM("plain-corp-root-2")
	g.Expect(err).NotTo(HaveOccurred())
	cm.Data = map[string]string{"bundle.pem": string(other)}
	g.Expect(ctrltest.Client.Update(ctx, cm)).To(Succeed())
	g.Eventually(h.RootCertificates).WithTimeout(time.Minute).ShouldNot(ContainElement(isCA))
	g.Expect(h.RootCertificates()).To(HaveLen(1))
	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	g.Expect(h.RootCertificates()).To(BeEmpty(), "cleanup removes what the operator imported")
}
