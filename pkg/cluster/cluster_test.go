package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"

	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/test/localcluster"
)

const machineCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: machines.machine.openshift.io
spec:
  group: machine.openshift.io
  names: {kind: Machine, listKind: MachineList, plural: machines, singular: machine}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

const openshiftConfigCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: networks.config.openshift.io
spec:
  group: config.openshift.io
  names: {kind: Network, listKind: NetworkList, plural: networks, singular: network}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// One control plane: first as plain Kubernetes, then with the OpenShift
// APIs installed.
func TestDetect(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Stop() }()
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	info, err := cluster.Detect(cs.Discovery())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info).To(Equal(cluster.Info{Platform: cluster.Kubernetes, Version: localcluster.DefaultKubernetesVersion}))

	dir := t.TempDir()
	for name, body := range map[string]string{"machine.yaml": machineCRD, "network.yaml": openshiftConfigCRD} {
		g.Expect(os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)).To(Succeed())
	}
	g.Expect(localcluster.InstallCRDs(ctx, c.Config, dir)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cs, err := kubernetes.NewForConfig(c.Config) // fresh discovery, no cache
		g.Expect(err).NotTo(HaveOccurred())
		info, err := cluster.Detect(cs.Discovery())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Platform).To(Equal(cluster.OpenShift))
		g.Expect(info.MachineAPI).To(BeTrue())
	}).Should(Succeed())
}
