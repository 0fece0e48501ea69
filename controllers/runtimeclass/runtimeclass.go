package runtimeclass

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

const (
	// Handler is the containerd runtime handler of process-isolated
	// Windows containers: the runtime the plan configures
	// (pkg/nodeconfig's containerd.toml, default_runtime_name).
	Handler = "runhcs-wcow-process"
	// LabelManagedBy marks the RuntimeClasses the operator keeps; it never
	// changes or removes one without it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "wmco"
	// LabelWindowsBuild on a RuntimeClass is the build number it is for,
	// e.g. "20348".
	LabelWindowsBuild = "wmco.io/windows-build"
)

// names are the RuntimeClass names of the Windows Server releases.
var names = map[int]string{
	wicdapi.OSBuildServer2019: "windows-2019",
	wicdapi.OSBuildServer2022: "windows-2022",
	wicdapi.OSBuildServer2025: "windows-2025",
}

// Name is the RuntimeClass name for a Windows build: windows-2019
// (17763), windows-2022 (20348), windows-2025 (26100), else
// windows-<build>.
func Name(build int) string {
	if n, ok := names[build]; ok {
		return n
	}
	return "windows-" + strconv.Itoa(build)
}

// ParseWindowsBuild reads the build number from the value of a Node's
// node.kubernetes.io/windows-build label, which the kubelet sets to
// "<major>.<minor>.<build>" (e.g. "10.0.20348").
func ParseWindowsBuild(label string) (int, error) {
	parts := strings.Split(label, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("windows-build %q is not <major>.<minor>.<build>", label)
	}
	var build int
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.TrimLeft(p, "0123456789") != "" {
			return 0, fmt.Errorf("windows-build %q is not <major>.<minor>.<build>", label)
		}
		if i == 2 {
			build, _ = strconv.Atoi(p) // nine digits at most: no overflow
		}
	}
	if build <= 0 {
		return 0, fmt.Errorf("windows-build %q has no build number", label)
	}
	return build, nil
}

// Build is one Windows build among the operator's Nodes.
type Build struct {
	// Number is the build number, e.g. 20348.
	Number int
	// Label is the Nodes' node.kubernetes.io/windows-build value, e.g.
	// "10.0.20348": the RuntimeClass selects Nodes by it.
	Label string
}

// BuildsOf returns the distinct Windows builds of nodes, ordered by
// number, and the Nodes whose label cannot be read (by name). Two label
// values of the same build (which a kubelet does not produce) keep the
// smaller one.
func BuildsOf(nodes []corev1.Node) (builds []Build, unreadable []string) {
	byNumber := map[int]string{}
	for i := range nodes {
		label, ok := nodes[i].Labels[corev1.LabelWindowsBuild]
		if !ok {
			unreadable = append(unreadable, nodes[i].Name)
			continue
		}
		n, err := ParseWindowsBuild(label)
		if err != nil {
			unreadable = append(unreadable, nodes[i].Name)
			continue
		}
		if old, ok := byNumber[n]; !ok || label < old {
			byNumber[n] = label
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byNumber)) {
		builds = append(builds, Build{Number: n, Label: byNumber[n]})
	}
	slices.Sort(unreadable)
	return builds, unreadable
}

// Desired is the RuntimeClass the operator keeps for build b: the
// process-isolation handler, scheduling onto Windows Nodes of that build
// only, tolerating the taints the WindowsNodeConfig puts on every Windows
// Node.
func Desired(b Build, taints []wmcov1.NodeTaint) *nodev1.RuntimeClass {
	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{
			Name: Name(b.Number),
			Labels: map[string]string{
				LabelManagedBy:    ManagedByValue,
				LabelWindowsBuild: strconv.Itoa(b.Number),
			},
		},
		Handler: Handler,
		Scheduling: &nodev1.Scheduling{
			NodeSelector: map[string]string{
				corev1.LabelOSStable:     string(corev1.Windows),
				corev1.LabelWindowsBuild: b.Label,
			},
		},
	}
	for _, t := range taints {
		rc.Scheduling.Tolerations = append(rc.Scheduling.Tolerations, corev1.Toleration{
			Key: t.Key, Operator: corev1.TolerationOpEqual, Value: t.Value, Effect: corev1.TaintEffect(t.Effect),
		})
	}
	return rc
}
