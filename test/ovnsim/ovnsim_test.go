package ovnsim_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/ovnsim"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) {
	SetDefaultEventuallyTimeout(30 * time.Second)
	os.Exit(ctrltest.Run(m))
}

func TestNextSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	hybrid := []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.0.0/22", HostPrefix: 23}, {CIDR: "10.140.0.0/24"}}
	cases := []struct {
		name     string
		networks []operatorv1.ClusterNetworkEntry
		used     []netip.Prefix
		want     string
		err      string
	}{
		{name: "first", networks: hybrid, want: "10.132.0.0/23"},
		{name: "next", networks: hybrid, used: []netip.Prefix{p("10.132.0.0/23")}, want: "10.132.2.0/23"},
		{name: "a hole is filled", networks: hybrid, used: []netip.Prefix{p("10.132.2.0/23")}, want: "10.132.0.0/23"},
		{name: "a used subnet of another size overlaps", networks: hybrid, used: []netip.Prefix{p("10.132.1.0/24")}, want: "10.132.2.0/23"},
		{name: "then the next network, /24 by default", networks: hybrid, used: []netip.Prefix{p("10.132.0.0/23"), p("10.132.2.0/23")}, want: "10.140.0.0/24"},
		{name: "exhausted", networks: hybrid, used: []netip.Prefix{p("10.132.0.0/22"), p("10.140.0.0/24")}, err: ovnsim.ErrExhausted.Error()},
		{name: "IPv6", networks: []operatorv1.ClusterNetworkEntry{{CIDR: "fd00:10::/48", HostPrefix: 64}}, used: []netip.Prefix{p("fd00:10::/64")}, want: "fd00:10:0:1::/64"},
		{name: "unmasked network", networks: []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.5.7/16", HostPrefix: 24}}, want: "10.132.0.0/24"},
		{name: "host prefix shorter than the network", networks: []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.0.0/24", HostPrefix: 23}}, err: "hybridClusterNetwork 10.132.0.0/24: hostPrefix 23 does not fit"},
		{name: "not a CIDR", networks: []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.0.0"}}, err: `hybridClusterNetwork "10.132.0.0": netip.ParsePrefix("10.132.0.0"): no '/'`},
		{name: "no network", err: ovnsim.ErrExhausted.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ovnsim.NextSubnet(tc.networks, tc.used)
			if tc.err != "" {
				g.Expect(err).To(MatchError(tc.err))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.String()).To(Equal(tc.want))
		})
	}
}

func windowsNode(name string, annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{corev1.LabelOSStable: "windows"}, Annotations: annotations,
	}}
}

// subnets reads the annotation of every named Node ("" when absent).
func subnets(g Gomega, names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		node := &corev1.Node{}
		g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: n}, node)).To(Succeed())
		out[n] = node.Annotations[ovnsim.AnnotationHostSubnet]
	}
	return out
}

// On the local control plane with the real operator Network CRD: nothing
// is assigned without a hybrid overlay; once configured, each Windows
// Node gets its own /23 of 10.132.0.0/14 and a Linux Node none; a subnet
// annotated before is kept and skipped; after a restart the assignments
// stand and a new Node gets a subnet no one has.
func TestAllocator(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	g.Expect(openshiftcrds.Install(ctx, ctrltest.Cluster.Config, openshiftcrds.ClusterConfigFiles...)).To(Succeed())
	oc, err := openshiftcrds.NewOVNCluster(ctx, ctrltest.Cluster.Config, openshiftcrds.OVNOptions{APIServerInternalURL: ctrltest.Cluster.Host})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = oc.Delete(context.Background()) })

	var nodes []string
	create := func(n *corev1.Node) {
		g.Expect(ctrltest.Client.Create(ctx, n)).To(Succeed())
		nodes = append(nodes, n.Name)
		t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), n) })
	}
	// Assigned by an earlier allocator.
	create(windowsNode("win-old", map[string]string{ovnsim.AnnotationHostSubnet: "10.132.0.0/23"}))
	create(windowsNode("win-a", nil))
	linux := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "linux-a", Labels: map[string]string{corev1.LabelOSStable: "linux"}}}
	g.Expect(ctrltest.Client.Create(ctx, linux)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), linux) })

	var declined sync.Map
	opts := ovnsim.Options{
		Logger:   zap.New(zap.UseDevMode(true), zap.WriteTo(ctrltest.LogWriter{T: t})),
		Declined: func(node, reason string) { declined.Store(node, reason) },
	}
	stop, err := ovnsim.Start(ctx, ctrltest.Cluster.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())

	// Without a hybrid overlay the allocator decides to assign nothing;
	// then the configuration arrives (an event).
	g.Eventually(func() any { v, _ := declined.Load("win-a"); return v }).Should(Equal("no hybrid overlay"))
	g.Expect(subnets(g, "win-a")).To(HaveKeyWithValue("win-a", ""))
	g.Expect(oc.SetHybridOverlay(ctx, &openshiftcrds.DefaultHybridOverlay)).To(Succeed())
	for i := range 3 {
		create(windowsNode(fmt.Sprintf("win-%d", i), nil))
	}
	hybrid := netip.MustParsePrefix("10.132.0.0/14")
	var before map[string]string
	g.Eventually(func(g Gomega) {
		before = subnets(g, nodes...)
		seen := map[netip.Prefix]string{}
		for n, s := range before {
			g.Expect(s).NotTo(BeEmpty(), n)
			p, err := netip.ParsePrefix(s)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Bits()).To(Equal(23))
			g.Expect(hybrid.Contains(p.Addr())).To(BeTrue(), s)
			for q, other := range seen {
				g.Expect(q.Overlaps(p)).To(BeFalse(), "%s of %s and %s of %s", s, n, q, other)
			}
			seen[p] = n
		}
	}).Should(Succeed())
	g.Expect(before).To(HaveKeyWithValue("win-old", "10.132.0.0/23"))
	g.Expect(subnets(g, "linux-a")).To(HaveKeyWithValue("linux-a", ""))

	// A restart: nothing is reassigned, a new Node gets a free subnet.
	stop()
	stop, err = ovnsim.Start(ctx, ctrltest.Cluster.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(stop)
	create(windowsNode("win-new", nil))
	g.Eventually(func(g Gomega) {
		g.Expect(subnets(g, "win-new")["win-new"]).NotTo(BeEmpty())
	}).Should(Succeed())
	after := subnets(g, nodes...)
	newSubnet := netip.MustParsePrefix(after["win-new"])
	delete(after, "win-new")
	g.Expect(after).To(Equal(before))
	for n, s := range before {
		g.Expect(netip.MustParsePrefix(s).Overlaps(newSubnet)).To(BeFalse(), "%s has %s", n, s)
	}
}

// FuzzNextSubnet: never panics nor hangs; a subnet found is of the host
// prefix, inside the network, and overlaps nothing used.
func FuzzNextSubnet(f *testing.F) {
	f.Add("10.132.0.0/14", uint32(23), "10.132.0.0/23", "10.132.0.0/15")
	f.Add("fd00::/64", uint32(128), "fd00::/64", "::/0")
	f.Add("10.0.0.0/8", uint32(0), "10.0.0.0/9", "10.128.0.0/24")
	f.Fuzz(func(t *testing.T, cidr string, hostPrefix uint32, used1, used2 string) {
		var used []netip.Prefix
		for _, u := range []string{used1, used2} {
			if p, err := netip.ParsePrefix(u); err == nil {
				used = append(used, p.Masked())
			}
		}
		got, err := ovnsim.NextSubnet([]operatorv1.ClusterNetworkEntry{{CIDR: cidr, HostPrefix: hostPrefix}}, used)
		if err != nil {
			return
		}
		network := netip.MustParsePrefix(cidr).Masked()
		if hostPrefix != 0 && got.Bits() != int(hostPrefix) {
			t.Fatalf("%s is not a /%d", got, hostPrefix)
		}
		if !network.Contains(got.Addr()) || got.Bits() < network.Bits() {
			t.Fatalf("%s is not inside %s", got, network)
		}
		for _, u := range used {
			if u.Overlaps(got) {
				t.Fatalf("%s overlaps used %s", got, u)
			}
		}
	})
}
