package machinesim

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/openwmco/wmco/pkg/platform"
)

func cloudOf(t configv1.PlatformType) *Cloud {
	p, _ := platform.Lookup(t)
	return &Cloud{profile: p}
}

// Each platform's VM looks as its Machine API provider reports it.
func TestIdentityAndHostname(t *testing.T) {
	m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "winworker-east-abcde"}}
	m.Spec.ProviderSpec.Value = &runtime.RawExtension{Raw: []byte(`{"placement":{"availabilityZone":"eu-west-1c"}}`)}
	tests := []struct {
		platform   configv1.PlatformType
		providerID string
		addrs      []corev1.NodeAddress
		hostname   string
		accounts   []string
	}{
		{platform: configv1.AWSPlatformType, providerID: `^aws:///eu-west-1c/i-[0-9a-f]{17}$`,
			addrs: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.200.7"},
				{Type: corev1.NodeInternalDNS, Address: "ip-127-0-200-7.ec2.internal"},
				{Type: corev1.NodeHostName, Address: "ip-127-0-200-7.ec2.internal"},
			},
			hostname: `^EC2AMAZ-[A-Z0-9]{7}$`, accounts: []string{"Administrator"}},
		{platform: configv1.AzurePlatformType,
			providerID: `^azure:///subscriptions/[0-9a-f-]{36}/resourceGroups/sim-cluster-rg/providers/Microsoft.Compute/virtualMachines/winworker-east-abcde$`,
			addrs: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "winworker-east-abcde"},
				{Type: corev1.NodeInternalIP, Address: "127.0.200.7"},
			},
			hostname: `^WINWORKER-EAST-$`, accounts: []string{"capi"}},
		{platform: configv1.VSpherePlatformType, providerID: `^vsphere://[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`,
			addrs: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.200.7"},
				{Type: corev1.NodeInternalDNS, Address: "winworker-east-abcde"},
			},
			hostname: `^WIN-TEMPLATE$`, accounts: []string{"Administrator"}},
		{platform: configv1.NonePlatformType, providerID: `^$`,
			addrs:    []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.200.7"}},
			hostname: `^WIN-[A-Z0-9]{11}$`, accounts: []string{"Administrator"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.platform), func(t *testing.T) {
			g := NewWithT(t)
			c := cloudOf(tt.platform)
			id, addrs := c.identity(m, "127.0.200.7")
			g.Expect(id).To(MatchRegexp(tt.providerID))
			g.Expect(addrs).To(Equal(tt.addrs))
			g.Expect(c.hostname(m.Name)).To(MatchRegexp(tt.hostname))
			g.Expect(len(c.hostname(m.Name))).To(BeNumerically("<=", platform.MaxHostnameLength))
			g.Expect(c.accounts()).To(Equal(tt.accounts))
		})
	}
	g := NewWithT(t)
	c := cloudOf(configv1.AzurePlatformType)
	c.opts.Hostname = func(string) string { return "CHOSEN" }
	g.Expect(c.hostname(m.Name)).To(Equal("CHOSEN"))
}

func TestUserDataSecretName(t *testing.T) {
	tests := []struct {
		name, raw, want, err string
	}{
		{name: "named", raw: `{"userDataSecret":{"name":"windows-user-data"}}`, want: "windows-user-data"},
		{name: "no secret", raw: `{"instanceType":"m5a.large"}`, err: "names no userDataSecret"},
		{name: "empty name", raw: `{"userDataSecret":{}}`, err: "names no userDataSecret"},
		{name: "not an object", raw: `[1]`, err: "providerSpec.value"},
		{name: "no value", err: "no providerSpec.value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			m := &machinev1beta1.Machine{}
			if tt.raw != "" {
				m.Spec.ProviderSpec.Value = &runtime.RawExtension{Raw: []byte(tt.raw)}
			}
			got, err := userDataSecretName(m)
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

// Scale-down picks Machines being deleted, then those annotated for
// deletion, then those without a Node, then by the policy.
func TestToDelete(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	machine := func(name string, age int, mutate ...func(*machinev1beta1.Machine)) *machinev1beta1.Machine {
		m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(base.Add(time.Duration(age) * time.Minute))}}
		m.Status.NodeRef = &corev1.ObjectReference{Name: name}
		for _, f := range mutate {
			f(m)
		}
		return m
	}
	deleting := func(m *machinev1beta1.Machine) { m.DeletionTimestamp = ptr.To(metav1.NewTime(base)) }
	annotated := func(m *machinev1beta1.Machine) { m.Annotations = map[string]string{DeleteMachineAnnotation: "true"} }
	noNode := func(m *machinev1beta1.Machine) { m.Status.NodeRef = nil }
	names := func(ms []*machinev1beta1.Machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	tests := []struct {
		name     string
		machines []*machinev1beta1.Machine
		n        int
		policy   string
		want     []string
	}{
		{name: "newest first by default", machines: []*machinev1beta1.Machine{machine("a", 1), machine("b", 3), machine("c", 2)}, n: 2, want: []string{"b", "c"}},
		{name: "oldest", machines: []*machinev1beta1.Machine{machine("a", 1), machine("b", 3), machine("c", 2)}, n: 2, policy: "Oldest", want: []string{"a", "c"}},
		{name: "deleting, annotated, nodeless, then the rest",
			machines: []*machinev1beta1.Machine{machine("new", 9), machine("nodeless", 1, noNode), machine("marked", 0, annotated), machine("going", 0, deleting)},
			n:        4, want: []string{"going", "marked", "nodeless", "new"}},
		{name: "random keeps the priorities", machines: []*machinev1beta1.Machine{machine("a", 1), machine("b", 2, annotated)}, n: 1, policy: "Random", want: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(names(toDelete(tt.machines, tt.n, tt.policy))).To(Equal(tt.want))
		})
	}
}
