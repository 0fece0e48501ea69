package instance

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
)

// networkMismatches names what differs between the network the host
// would be given (s.config, s.cluster) and the one the cluster runs, with
// the podCIDR of the instance's Node when it has joined
// (cluster.NetworkMismatches; only network type Flannel is checked).
func (r *Reconciler) networkMismatches(ctx context.Context, s *scope) ([]string, error) {
	if s.config.Network.Type != wmcov1.NetworkFlannel {
		return nil, nil
	}
	var podCIDR string
	if name := s.wi.Status.NodeName; name != "" {
		// The cache holds the operator's Nodes, the only ones of interest.
		node := &corev1.Node{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: name}, node)
		switch {
		case err == nil:
			if core.OwnsNode(s.wi, node) {
				podCIDR = node.Spec.PodCIDR
			}
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get Node %s: %w", name, err)
		}
	}
	return cluster.NetworkMismatches(s.config.Network, s.cluster, podCIDR), nil
}

// reportClusterConfig sets ClusterConfigCompatible from the cluster
// source's problem and the network mismatches, with a Warning Event when
// the mismatches appear or change.
func (r *Reconciler) reportClusterConfig(s *scope, problem string, mismatches []string) {
	wi := s.wi
	if problem == "" && len(mismatches) > 0 {
		// A copy: setting the condition changes the one in the list.
		var prev metav1.Condition
		if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionClusterConfigCompatible); c != nil {
			prev = *c
		}
		setClusterConfigCondition(wi, problem, mismatches)
		cur := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionClusterConfigCompatible)
		if prev.Reason != cur.Reason || prev.Message != cur.Message {
			s.log.Info("The host's network would not match the cluster's", "mismatches", strings.Join(mismatches, "; "))
			r.event(s, true, ReasonClusterNetworkMismatch, "%s", core.Truncate(networkMismatchMessage(mismatches), maxEventNote))
		}
		return
	}
	setClusterConfigCondition(wi, problem, mismatches)
}

// maxEventNote bounds an Event's note (events.k8s.io allows 1 kB).
const maxEventNote = 1024

// networkMismatchMessage is the condition's message for mismatches.
func networkMismatchMessage(mismatches []string) string {
	return "the Windows hosts' network would not match the cluster's: " + strings.Join(mismatches, "; ")
}
