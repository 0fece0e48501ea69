// Package ovnsim stands in, in tests, for OVN-Kubernetes' hybrid-overlay
// subnet allocator (ovnkube's cluster manager on OpenShift): every Node
// labelled kubernetes.io/os=windows without the annotation
// k8s.ovn.org/hybrid-overlay-node-subnet gets the next free subnet of
// size /hostPrefix from the hybridClusterNetwork of
// networks.operator.openshift.io/cluster. Subnets already annotated are
// never changed and never given twice, also across restarts (the
// allocator reads them from the Nodes). Without a hybrid overlay
// configured nothing is assigned until one is.
package ovnsim

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sync"

	"github.com/go-logr/logr"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
)

// AnnotationHostSubnet is the Node annotation with the node's hybrid
// overlay subnet, a CIDR.
const AnnotationHostSubnet = "k8s.ovn.org/hybrid-overlay-node-subnet"

// windowsNodes selects the Nodes the allocator serves.
var windowsNodes = labels.SelectorFromSet(labels.Set{corev1.LabelOSStable: "windows"})

// ErrExhausted is returned by NextSubnet when every subnet is taken.
var ErrExhausted = errors.New("every hybrid overlay subnet is taken")

// Options of the allocator.
type Options struct {
	// Logger (default: discard).
	Logger logr.Logger
	// Declined, when set, is called each time a Windows Node without a
	// subnet was looked at and given none (no hybrid overlay configured,
	// every subnet taken), with the reason: tests learn that the
	// allocator did decide.
	Declined func(node, reason string)
}

// Start runs the allocator against the API server of cfg (as a user that
// may list, watch and patch Nodes and read networks.operator.openshift.io)
// until ctx ends or stop is called; it returns once its cache is synced.
// stop waits for it to end.
func Start(ctx context.Context, cfg *rest.Config, o Options) (stop func(), err error) {
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	scheme, err := core.NewScheme()
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 o.Logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Node{}: {Label: windowsNodes}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("ovnsim: manager: %w", err)
	}
	a := &allocator{client: mgr.GetClient(), live: mgr.GetAPIReader(), declined: o.Declined}
	if a.declined == nil {
		a.declined = func(string, string) {}
	}
	allNodes := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var nodes corev1.NodeList
		if err := a.client.List(ctx, &nodes); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(nodes.Items))
		for _, n := range nodes.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: n.Name}})
		}
		return out
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("ovnsim-hybrid-overlay").
		For(&corev1.Node{}).
		Watches(&operatorv1.Network{}, allNodes, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == cluster.ConfigName
		}))).
		// One worker: allocations are decided one at a time.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(a)
	if err != nil {
		return nil, fmt.Errorf("ovnsim: controller: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		errc <- mgr.Start(runCtx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	if !mgr.GetCache().WaitForCacheSync(runCtx) {
		stop()
		return nil, fmt.Errorf("ovnsim: cache did not sync: %w", <-errc)
	}
	return stop, nil
}

// allocator assigns subnets to Windows Nodes.
type allocator struct {
	client client.Client
	// live lists Nodes from the API server: a subnet just given must be
	// seen by the next decision, which a cache may not yet show.
	live     client.Reader
	declined func(node, reason string)
}

// Reconcile annotates the Node with the next free subnet unless it has
// one.
func (a *allocator) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	node := &corev1.Node{}
	if err := a.live.Get(ctx, req.NamespacedName, node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !windowsNodes.Matches(labels.Set(node.Labels)) || node.Annotations[AnnotationHostSubnet] != "" || !node.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	network := &operatorv1.Network{}
	err := a.client.Get(ctx, client.ObjectKey{Name: cluster.ConfigName}, network)
	if apierrors.IsNotFound(err) {
		// Its creation is an event.
		a.declined(node.Name, "no networks.operator.openshift.io/cluster")
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	hybrid := hybridNetworks(network)
	if len(hybrid) == 0 {
		log.Info("No hybrid overlay configured; the Node gets no subnet", "node", node.Name)
		a.declined(node.Name, "no hybrid overlay")
		return ctrl.Result{}, nil
	}
	var nodes corev1.NodeList
	if err := a.live.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, err
	}
	var used []netip.Prefix
	for _, n := range nodes.Items {
		if s := n.Annotations[AnnotationHostSubnet]; s != "" {
			if p, err := netip.ParsePrefix(s); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	subnet, err := NextSubnet(hybrid, used)
	if err != nil {
		log.Info("No subnet for the Node", "node", node.Name, "error", err.Error())
		a.declined(node.Name, err.Error())
		// A Node deleted or a network added is an event.
		return ctrl.Result{}, nil
	}
	patch := client.MergeFromWithOptions(node.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[AnnotationHostSubnet] = subnet.String()
	if err := a.client.Patch(ctx, node, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("annotate Node %s: %w", node.Name, err)
	}
	log.Info("Assigned a hybrid overlay subnet", "node", node.Name, "subnet", subnet.String())
	return ctrl.Result{}, nil
}

// hybridNetworks is the hybrid overlay's cluster networks, or none.
func hybridNetworks(n *operatorv1.Network) []operatorv1.ClusterNetworkEntry {
	ovn := n.Spec.DefaultNetwork.OVNKubernetesConfig
	if ovn == nil || ovn.HybridOverlayConfig == nil {
		return nil
	}
	return ovn.HybridOverlayConfig.HybridClusterNetwork
}

// NextSubnet is the first subnet of size /hostPrefix, in the order of
// networks and of addresses within each, that overlaps none of used. A
// hostPrefix of 0 is /24 for IPv4 and /64 for IPv6.
func NextSubnet(networks []operatorv1.ClusterNetworkEntry, used []netip.Prefix) (netip.Prefix, error) {
	for _, n := range networks {
		network, err := netip.ParsePrefix(n.CIDR)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("hybridClusterNetwork %q: %w", n.CIDR, err)
		}
		network = network.Masked()
		bits := network.Addr().BitLen()
		size := int(n.HostPrefix)
		if size == 0 {
			size = map[int]int{32: 24, 128: 64}[bits]
		}
		if size < network.Bits() || size > bits {
			return netip.Prefix{}, fmt.Errorf("hybridClusterNetwork %s: hostPrefix %d does not fit", network, size)
		}
		count := new(big.Int).Lsh(big.NewInt(1), uint(size-network.Bits()))
		step := new(big.Int).Lsh(big.NewInt(1), uint(bits-size))
		start := new(big.Int).SetBytes(network.Addr().AsSlice())
		for i := big.NewInt(0); i.Cmp(count) < 0; {
			first := new(big.Int).Add(start, new(big.Int).Mul(i, step))
			addr, _ := netip.AddrFromSlice(first.FillBytes(make([]byte, bits/8)))
			candidate := netip.PrefixFrom(addr, size)
			next := new(big.Int).Add(i, big.NewInt(1))
			free := true
			for _, u := range used {
				if !u.Overlaps(candidate) {
					continue
				}
				free = false
				if u.Bits() < size {
					// u spans many candidates: go past its last address.
					end := new(big.Int).SetBytes(u.Masked().Addr().AsSlice())
					end.Add(end, new(big.Int).Lsh(big.NewInt(1), uint(bits-u.Bits())))
					if skip := end.Sub(end, start).Div(end, step); skip.Cmp(next) > 0 {
						next = skip
					}
				}
			}
			if free {
				return candidate, nil
			}
			i = next
		}
	}
	return netip.Prefix{}, ErrExhausted
}
