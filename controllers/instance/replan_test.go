package instance_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// commandLog records the commands a simulated host ran, in order.
type commandLog struct {
	mu       sync.Mutex
	commands []string
}

func (l *commandLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *commandLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *commandLog) WithGroup(string) slog.Handler            { return l }
func (l *commandLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "Command started" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "command" {
			l.mu.Lock()
			l.commands = append(l.commands, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

// between returns the commands run after the first one containing from
// and before the next one containing to.
func (l *commandLog) between(from, to string) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := -1
	for i, c := range l.commands {
		switch {
		case start < 0 && strings.Contains(c, from):
			start = i
		case start >= 0 && strings.Contains(c, to):
			return l.commands[start+1 : i], true
		}
	}
	return nil, false
}

// A Node that registers (and gets its pod subnet) while the first plan's
// services start has the plan with its CNI configuration and kube-proxy
// applied right after, in the same reconcile: the host's facts are not
// gathered again in between. hybrid-overlay-node's start, which follows
// the kubelet's, is held until the Node has its subnet, so the first
// apply ends after it.
func TestNodeRegisteredDuringApplyGetsItsSubnetInTheSameReconcile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	log := &commandLog{}
	var nodeName string
	subnetKnown := func(ctx context.Context) error {
		return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			node := &corev1.Node{}
			if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: nodeName}, node); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return node.Spec.PodCIDR != "", nil
		})
	}
	h := ctrltest.StartLoggedHost(t, slog.New(log), simagent.Options{
		StartGates: map[string]func(context.Context) error{"hybrid-overlay-node.exe": subnetKnown},
	})
	nodeName = h.Name
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)

	between, ok := log.between(" apply ", " apply ")
	g.Expect(ok).To(BeTrue(), "two applies: without the subnet, then with it")
	for _, c := range between {
		g.Expect(c).NotTo(ContainSubstring(" facts"), "the second apply follows the first in the same reconcile; commands between them: %q", between)
	}
	cni, err := h.Host.Disk().ReadFile(nodeconfig.CNIConfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(cni)).To(ContainSubstring(node.Spec.PodCIDR))
}
