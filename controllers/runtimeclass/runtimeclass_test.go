package runtimeclass_test

import (
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/runtimeclass"
)

func TestName(t *testing.T) {
	for build, want := range map[int]string{
		17763: "windows-2019", 20348: "windows-2022", 26100: "windows-2025", 19041: "windows-19041", 1: "windows-1",
	} {
		NewWithT(t).Expect(runtimeclass.Name(build)).To(Equal(want), strconv.Itoa(build))
	}
}

func TestParseWindowsBuild(t *testing.T) {
	for _, tc := range []struct {
		label string
		want  int
		ok    bool
	}{
		{"10.0.20348", 20348, true},
		{"10.0.17763", 17763, true},
		{"10.0.26100", 26100, true},
		{"10.0.020348", 20348, true},
		{"10.0", 0, false},
		{"10.0.20348.1", 0, false},
		{"10.0.", 0, false},
		{"10.0.0", 0, false},
		{"10.0.-1", 0, false},
		{"10.0.+5", 0, false},
		{"10.0.2e3", 0, false},
		{"a.b.c", 0, false},
		{"10.0.1234567890", 0, false},
		{"", 0, false},
	} {
		g := NewWithT(t)
		got, err := runtimeclass.ParseWindowsBuild(tc.label)
		if !tc.ok {
			g.Expect(err).To(HaveOccurred(), tc.label)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), tc.label)
		g.Expect(got).To(Equal(tc.want), tc.label)
	}
}

func FuzzParseWindowsBuild(f *testing.F) {
	for _, s := range []string{"10.0.20348", "10.0.17763", "1.2.3", "..", "10.0.99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		n, err := runtimeclass.ParseWindowsBuild(label)
		if err != nil {
			return
		}
		if n <= 0 {
			t.Fatalf("%q: build %d accepted", label, n)
		}
		// What is accepted names a valid RuntimeClass (a DNS subdomain).
		name := runtimeclass.Name(n)
		if len(name) > 63 {
			t.Fatalf("%q: name %q too long", label, name)
		}
	})
}

func node(name string, labels map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestBuildsOf(t *testing.T) {
	g := NewWithT(t)
	builds, unreadable := runtimeclass.BuildsOf([]corev1.Node{
		node("c", map[string]string{corev1.LabelWindowsBuild: "10.0.20348"}),
		node("a", map[string]string{corev1.LabelWindowsBuild: "10.0.17763"}),
		node("b", map[string]string{corev1.LabelWindowsBuild: "10.0.20348"}),
		node("z", map[string]string{}),
		node("y", map[string]string{corev1.LabelWindowsBuild: "garbage"}),
	})
	g.Expect(builds).To(Equal([]runtimeclass.Build{{Number: 17763, Label: "10.0.17763"}, {Number: 20348, Label: "10.0.20348"}}))
	g.Expect(unreadable).To(Equal([]string{"y", "z"}))

	builds, unreadable = runtimeclass.BuildsOf(nil)
	g.Expect(builds).To(BeEmpty())
	g.Expect(unreadable).To(BeEmpty())
}

func TestDesired(t *testing.T) {
	g := NewWithT(t)
	rc := runtimeclass.Desired(runtimeclass.Build{Number: 20348, Label: "10.0.20348"},
		[]wmcov1.NodeTaint{{Key: "os", Value: "Windows", Effect: "NoSchedule"}, {Key: "dedicated", Effect: "NoExecute"}})
	g.Expect(rc.Name).To(Equal("windows-2022"))
	g.Expect(rc.Handler).To(Equal("runhcs-wcow-process"))
	g.Expect(rc.Labels).To(Equal(map[string]string{runtimeclass.LabelManagedBy: "wmco", runtimeclass.LabelWindowsBuild: "20348"}))
	g.Expect(rc.Scheduling.NodeSelector).To(Equal(map[string]string{"kubernetes.io/os": "windows", "node.kubernetes.io/windows-build": "10.0.20348"}))
	g.Expect(rc.Scheduling.Tolerations).To(Equal([]corev1.Toleration{
		{Key: "os", Operator: corev1.TolerationOpEqual, Value: "Windows", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Effect: corev1.TaintEffectNoExecute},
	}))

	g.Expect(runtimeclass.Desired(runtimeclass.Build{Number: 17763, Label: "10.0.17763"}, nil).Scheduling.Tolerations).To(BeEmpty())
}
