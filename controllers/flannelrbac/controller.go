// Package flannelrbac lets the Windows Nodes of network type Flannel do
// what flanneld's kube subnet manager does with their credentials.
// flanneld on a Windows host authenticates with the kubelet's kubeconfig,
// as the user system:node:<name>; it lists and watches every Node (the
// other nodes' subnets and VTEP addresses) and patches its own Node's
// status (flannel's annotations). The Node authorizer lets a node read
// only its own Node object (Kubernetes 1.34 and later,
// AuthorizeNodeWithSelectors), so with network type Flannel the operator
// keeps the ClusterRole wmco:flannel (flannel's own ClusterRole's node
// rules: get, list and watch nodes, patch nodes/status) and the
// ClusterRoleBinding wmco:flannel to exactly the users system:node:<name>
// of the Nodes it manages: a Node labelled wmco.io/instance=<instance>
// whose name is that WindowsInstance's status.nodeName (a kubelet that
// labels itself gains nothing). Subjects follow as Nodes join and leave;
// both objects go when no such Node remains or the network type is
// another. NodeRestriction still limits what a node may write to its own
// Node.
//
// The operator holds the permissions it grants (it may create the role
// and the binding only so), and may get, update and delete only these
// two objects by name; it reads them from the API server, not a cache, so
// it needs no list or watch of every ClusterRole. An edit of either is
// undone at the next event of a Node, WindowsInstance or the
// WindowsNodeConfig.
package flannelrbac

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes/status,verbs=patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,verbs=get;update;delete,resourceNames=wmco:flannel
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances;windowsnodeconfigs,verbs=get;list;watch

// Name is the name of the ClusterRole and of the ClusterRoleBinding.
const Name = "wmco:flannel"

// LabelManagedBy marks both objects as the operator's; one of that name
// without it is an admin's, left alone.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "wmco"
)

// Rules are the ClusterRole's rules: the node rules of flannel's own
// ClusterRole (Documentation/kube-flannel.yml). Its rule to get pods
// serves flanneld in a pod (POD_NAME); on a Windows host NODE_NAME names
// the node.
func Rules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
	}
}

// NodeUser is the user a node's kubelet credentials authenticate as.
func NodeUser(node string) string { return "system:node:" + node }

// request is the controller's one request: every event asks for the
// role and binding to be brought in line.
var request = reconcile.Request{NamespacedName: client.ObjectKey{Name: "flannel-rbac"}}

// Reconciler keeps the ClusterRole and ClusterRoleBinding.
type Reconciler struct {
	// Client reads Nodes, WindowsInstances and the WindowsNodeConfig
	// (cached) and writes the role and binding.
	Client client.Client
	// APIReader reads the role and binding (get by name only).
	APIReader client.Reader

	// removed is set once both objects were found absent or removed with
	// no Node needing them, until a Node does: until then a reconcile
	// (every Node and instance event) reads neither again. In a 50-host
	// join on another network type those reads were 200 GETs answered
	// 404.
	removed atomic.Bool
}

// Reconcile binds wmco:flannel to the nodes that need it, or removes both
// objects when none does.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	nodes, err := r.flannelNodes(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(nodes) == 0 {
		if r.removed.Load() {
			return ctrl.Result{}, nil
		}
		err := errors.Join(
			r.remove(ctx, &rbacv1.ClusterRoleBinding{}),
			r.remove(ctx, &rbacv1.ClusterRole{}),
		)
		r.removed.Store(err == nil)
		return ctrl.Result{}, err
	}
	r.removed.Store(false)
	if err := r.ensureRole(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.ensureBinding(ctx, Subjects(nodes))
}

// flannelNodes lists, sorted, the Nodes of the operator's instances when
// the network type is Flannel.
func (r *Reconciler) flannelNodes(ctx context.Context) ([]string, error) {
	cfg := &wmcov1.WindowsNodeConfig{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)
	if client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("read WindowsNodeConfig: %w", err)
	}
	if nodeconfig.Defaulted(cfg.Spec).Network.Type != wmcov1.NetworkFlannel {
		return nil, nil
	}
	var instances wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &instances); err != nil {
		return nil, fmt.Errorf("list WindowsInstances: %w", err)
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.HasLabels{wmcov1.LabelInstance}); err != nil {
		return nil, fmt.Errorf("list Windows Nodes: %w", err)
	}
	return ManagedNodes(instances.Items, nodes.Items), nil
}

// ManagedNodes are the names, sorted, of the Nodes labelled
// wmco.io/instance=<instance> whose name is that instance's
// status.nodeName.
func ManagedNodes(instances []wmcov1.WindowsInstance, nodes []corev1.Node) []string {
	nodeOf := map[string]string{}
	for _, wi := range instances {
		if wi.Status.NodeName != "" {
			nodeOf[wi.Name] = wi.Status.NodeName
		}
	}
	var out []string
	for _, n := range nodes {
		if name, ok := nodeOf[n.Labels[wmcov1.LabelInstance]]; ok && name == n.Name {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Subjects are the binding's subjects for nodes: their users.
func Subjects(nodes []string) []rbacv1.Subject {
	out := make([]rbacv1.Subject, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: NodeUser(n)})
	}
	return out
}

func meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: Name, Labels: map[string]string{LabelManagedBy: ManagedByValue}}
}

// ensureRole creates the ClusterRole or puts its rules back.
func (r *Reconciler) ensureRole(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx)
	have := &rbacv1.ClusterRole{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: Name}, have)
	switch {
	case apierrors.IsNotFound(err):
		log.Info("Creating ClusterRole for flanneld on Windows Nodes", "clusterRole", Name)
		if err := r.Client.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta(), Rules: Rules()}); err != nil {
			return fmt.Errorf("create ClusterRole %s: %w", Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read ClusterRole %s: %w", Name, err)
	case have.Labels[LabelManagedBy] != ManagedByValue:
		log.Info("A ClusterRole the operator did not make holds the name; leaving it alone", "clusterRole", Name)
		return nil
	case equality.Semantic.DeepEqual(have.Rules, Rules()) && have.AggregationRule == nil:
		return nil
	}
	log.Info("Updating ClusterRole", "clusterRole", Name)
	upd := have.DeepCopy()
	upd.Rules, upd.AggregationRule = Rules(), nil
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update ClusterRole %s: %w", Name, err)
	}
	return nil
}

// ensureBinding creates the ClusterRoleBinding or sets its subjects.
func (r *Reconciler) ensureBinding(ctx context.Context, subjects []rbacv1.Subject) error {
	log := ctrl.LoggerFrom(ctx)
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: Name}
	have := &rbacv1.ClusterRoleBinding{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: Name}, have)
	switch {
	case apierrors.IsNotFound(err):
		log.Info("Binding flanneld's ClusterRole to the Windows Nodes", "clusterRoleBinding", Name, "subjects", len(subjects))
		if err := r.Client.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta(), RoleRef: ref, Subjects: subjects}); err != nil {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read ClusterRoleBinding %s: %w", Name, err)
	case have.Labels[LabelManagedBy] != ManagedByValue:
		log.Info("A ClusterRoleBinding the operator did not make holds the name; leaving it alone", "clusterRoleBinding", Name)
		return nil
	case have.RoleRef != ref:
		// The role reference is immutable: replace the binding; the
		// deletion brings the next reconcile.
		log.Info("Replacing ClusterRoleBinding with another role", "clusterRoleBinding", Name, "role", have.RoleRef.Name)
		return r.remove(ctx, &rbacv1.ClusterRoleBinding{})
	case equality.Semantic.DeepEqual(have.Subjects, subjects):
		return nil
	}
	log.Info("Updating the Windows Nodes bound to flanneld's ClusterRole", "clusterRoleBinding", Name, "subjects", len(subjects))
	upd := have.DeepCopy()
	upd.Subjects = subjects
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update ClusterRoleBinding %s: %w", Name, err)
	}
	return nil
}

// remove deletes the operator's object of obj's kind named Name, if it
// exists and is the operator's.
func (r *Reconciler) remove(ctx context.Context, obj client.Object) error {
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: Name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %T %s: %w", obj, Name, err)
	}
	if obj.GetLabels()[LabelManagedBy] != ManagedByValue {
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Deleting flanneld's RBAC: no Windows Node of network type Flannel remains", "name", Name, "kind", fmt.Sprintf("%T", obj))
	uid := obj.GetUID()
	if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %T %s: %w", obj, Name, err)
	}
	return nil
}

// SetupWithManager registers the controller: it watches the operator's
// Nodes (creation, deletion, the instance label given or taken), the
// WindowsInstances' status.nodeName and the WindowsNodeConfig's spec.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.APIReader == nil {
		return errors.New("flannel RBAC controller: Client and APIReader are required")
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{request}
	})
	nodeName := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*wmcov1.WindowsInstance)
		n, ok2 := e.ObjectNew.(*wmcov1.WindowsInstance)
		return !ok1 || !ok2 || o.Status.NodeName != n.Status.NodeName
	}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("flannelrbac").
		Watches(&corev1.Node{}, all, builder.WithPredicates(core.OperatorNodes(func(o, n *corev1.Node) bool {
			return o.Labels[wmcov1.LabelInstance] != n.Labels[wmcov1.LabelInstance]
		}))).
		Watches(&wmcov1.WindowsInstance{}, all, builder.WithPredicates(nodeName)).
		Watches(&wmcov1.WindowsNodeConfig{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}
