package openshiftcrds

import (
	"os"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Every listed manifest is in the pinned module and defines the CRD its
// name promises, in the Default feature set.
func TestFilesAreTheDefaultCRDs(t *testing.T) {
	for file, name := range map[string]string{
		Machine:        "machines.machine.openshift.io",
		MachineSet:     "machinesets.machine.openshift.io",
		Infrastructure: "infrastructures.config.openshift.io",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Path(file)
			g.Expect(err).NotTo(HaveOccurred())
			data, err := os.ReadFile(p)
			g.Expect(err).NotTo(HaveOccurred())
			var crd apiextensionsv1.CustomResourceDefinition
			g.Expect(yaml.Unmarshal(data, &crd)).To(Succeed())
			g.Expect(crd.Name).To(Equal(name))
			g.Expect(crd.Annotations).To(HaveKeyWithValue("release.openshift.io/feature-set", "Default"))
		})
	}
	g := NewWithT(t)
	g.Expect(Files).To(ContainElements(Machine, MachineSet, Infrastructure))
	_, err := Path("config/v1/no-such.crd.yaml")
	g.Expect(err).To(HaveOccurred())
}
