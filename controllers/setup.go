package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/openwmco/wmco/controllers/clusterconfig"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/csrapproval"
	"github.com/openwmco/wmco/controllers/flannelrbac"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/controllers/inventory"
	"github.com/openwmco/wmco/controllers/nodemetrics"
	"github.com/openwmco/wmco/controllers/runtimeclass"
	"github.com/openwmco/wmco/controllers/servingcert"
	"github.com/openwmco/wmco/controllers/userdata"
	"github.com/openwmco/wmco/controllers/wnc"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/metrics"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
)

// Options wire the operator's controllers.
type Options struct {
	Config core.Config
	// Cluster is what kubelets need to know about the cluster.
	Cluster nodeconfig.ClusterFacts
	// ClusterSource keeps Cluster current from the cluster's
	// configuration; default a clusterconfig.Source started from Cluster.
	ClusterSource core.ClusterSource
	// Payloads the operator ships; the API server's version selects one.
	Payloads *payload.Catalog
	// Payload and PayloadDir make a catalog of one when Payloads is nil.
	Payload    *payload.Manifest
	PayloadDir string
	// ServerVersion is the API server's version, kept current (a
	// *cluster.VersionWatcher); default the fixed Cluster.KubernetesVersion.
	ServerVersion core.VersionSource
	// OperatorConditionName names OLM's OperatorCondition of the operator
	// ($OPERATOR_CONDITION_NAME), when installed by OLM.
	OperatorConditionName string
	// Dialer reaches hosts; default an SSH dialer that verifies uploads
	// with the agent.
	Dialer remote.Dialer
	// Clientset drains Nodes; default a *cluster.Clients.
	Clientset instance.Clientset
	// DrainTimeout is how long draining a Node may take before it is
	// reported as timed out (default instance.DefaultDrainTimeout).
	DrainTimeout time.Duration
	// MachineAPI starts the Machine controller.
	MachineAPI bool
	// MachinePlatform is the cluster's platform (cluster.InfrastructurePlatform):
	// how Machines map to hosts and which userData they get.
	MachinePlatform configv1.PlatformType
	// MachineUsername logs in to Machine hosts (default the platform's:
	// Administrator, or capi on Azure).
	MachineUsername string
	// MachineAccessTimeout is how long a Machine's host may refuse the
	// operator before the Machine says so (default
	// inventory.DefaultMachineAccessTimeout).
	MachineAccessTimeout time.Duration
	// MachineSSHPort is the SSH port of Machine hosts (default 22).
	MachineSSHPort int32
	// MetricsCertificate, when set, is loaded with the metrics endpoint's
	// certificate (the Secret servingcert.MetricsSecretName).
	MetricsCertificate *servingcert.MetricsCertificate
	// LeaderElection tells whether the manager elects a leader. Without
	// it, a manager not yet "elected" is one whose controllers have not
	// started, and the readiness check says so (ClusterConfigurationRead).
	LeaderElection bool
}

// CacheTransform trims every object the manager's cache keeps to what the
// operator reads: managed fields and the last-applied-configuration
// annotation go from every object, and from Nodes also the status
// fields no controller reads (images, volumes, daemon endpoints,
// capacity). The cached copies are read-only: every write is a patch
// computed between two such copies, or a status write of the operator's
// own objects, so nothing is written back without the fields dropped.
// Set it as the cache's DefaultTransform.
func CacheTransform(obj any) (any, error) {
	// An informer hands over tombstones of deleted objects too.
	if acc, err := meta.Accessor(obj); err == nil {
		acc.SetManagedFields(nil)
		if a := acc.GetAnnotations(); a != nil {
			if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
				delete(a, corev1.LastAppliedConfigAnnotation)
				acc.SetAnnotations(a)
			}
		}
	}
	if n, ok := obj.(*corev1.Node); ok {
		n.Status.Images = nil
		n.Status.VolumesInUse = nil
		n.Status.VolumesAttached = nil
		n.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{}
		n.Status.Capacity = nil
		n.Status.Allocatable = nil
		n.Status.Config = nil
	}
	return obj, nil
}

// Setup adds every controller of the operator to the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if o.Dialer == nil {
		o.Dialer = &remote.SSHDialer{Hash: instance.AgentHash}
	}
	if o.Clientset == nil {
		cs, err := cluster.NewClients(mgr.GetConfig())
		if err != nil {
			return err
		}
		o.Clientset = cs
	}
	if o.Payloads == nil {
		if o.Payload == nil {
			return fmt.Errorf("a payload is required")
		}
		o.Payloads = payload.NewCatalog(payload.Entry{Dir: o.PayloadDir, Manifest: o.Payload})
	}
	if o.ServerVersion == nil {
		o.ServerVersion = core.StaticVersion(o.Cluster.KubernetesVersion)
	}
	if o.ClusterSource == nil {
		// The cluster's configuration (OpenShift's config objects, the
		// WindowsNodeConfig) completes and overrides the facts from flags
		// and discovery, and keeps them current.
		src := clusterconfig.New(o.Cluster, o.Config)
		if err := src.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up the cluster configuration controller: %w", err)
		}
		o.ClusterSource = src
	}
	if err := mgr.AddReadyzCheck("cluster-configuration", ClusterConfigurationRead(mgr.Elected(), o.LeaderElection, o.ClusterSource)); err != nil {
		return fmt.Errorf("add the cluster configuration readiness check: %w", err)
	}
	// Bootstrap credentials are read live: one is issued moments before
	// the CSR it authenticates. OpenShift's nodes bootstrap as its
	// node-bootstrapper service account; elsewhere each host gets a
	// ServiceAccount of its own.
	var tokens bootstrap.Issuer
	if o.Config.Platform == cluster.OpenShift {
		tokens = &bootstrap.NodeBootstrapper{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: o.Config.Namespace}
	} else {
		t := &bootstrap.Tokens{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: o.Config.Namespace}
		if err := t.EnsureRBAC(ctx); err != nil {
			return err
		}
		tokens = t
	}
	// windows_exporter's and the metrics endpoint's certificates: the
	// operator's CA, or OpenShift's service CA.
	var authority *servingcert.Authority
	exporterSecret := ""
	if o.Config.Platform == cluster.OpenShift {
		exporterSecret = servingcert.ExporterSecretName
	} else {
		authority = &servingcert.Authority{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.Config.Namespace}
	}
	if err := (&servingcert.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.Config.Namespace,
		Authority: authority, Metrics: o.MetricsCertificate,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the serving certificate controller: %w", err)
	}
	if err := (&instance.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clientset: o.Clientset, Config: o.Config,
		Dialer: o.Dialer, Payloads: o.Payloads, ServerVersion: o.ServerVersion, Cluster: o.Cluster, ClusterSource: o.ClusterSource, Tokens: tokens,
		Recorder: mgr.GetEventRecorder("wmco"), DrainTimeout: o.DrainTimeout,
		ExporterCertificates: &servingcert.Exporter{Authority: authority, Client: mgr.GetClient(), Namespace: o.Config.Namespace},
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the WindowsInstance controller: %w", err)
	}
	if err := (&csrapproval.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: o.Config, Tokens: tokens,
		Recorder: mgr.GetEventRecorder("wmco-csr-approver"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the CSR approver: %w", err)
	}
	if err := (&inventory.ConfigMapReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: o.Config,
		Recorder: mgr.GetEventRecorder("wmco-inventory"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ConfigMap controller: %w", err)
	}
	if err := (&wnc.Reconciler{
		Client: mgr.GetClient(), Cluster: o.Cluster, ClusterSource: o.ClusterSource, Payloads: o.Payloads, ServerVersion: o.ServerVersion,
		Namespace: o.Config.Namespace, OperatorConditionName: o.OperatorConditionName,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("WindowsNodeConfig status controller: %w", err)
	}
	if err := (&runtimeclass.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the RuntimeClass controller: %w", err)
	}
	if err := (&flannelrbac.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the flannel RBAC controller: %w", err)
	}
	if err := (&nodemetrics.Reconciler{Client: mgr.GetClient(), Namespace: o.Config.Namespace, ServingCertSecret: exporterSecret}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the node metrics controller: %w", err)
	}
	if o.MachineAPI {
		if err := (&inventory.MachineReconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-machine-controller"), Platform: o.MachinePlatform,
			Username: o.MachineUsername, Port: o.MachineSSHPort, AccessTimeout: o.MachineAccessTimeout,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up the Machine controller: %w", err)
		}
		if err := (&userdata.Reconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-userdata"),
			Namespace: o.Config.Namespace, Platform: o.MachinePlatform,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up the userData controller: %w", err)
		}
	}
	metrics.SetInstanceReader(mgr.GetClient())
	return nil
}

// ClusterConfigurationRead is a readiness check: the leader (elected
// closed) is ready once src has read the cluster's configuration, so that
// a Ready operator acts on a host listed from then on at once rather than
// after its controllers' start-up. With leader election, a replica
// waiting to lead is ready: it has nothing to read until it leads, and a
// rolling update waits for the new replica to be ready before the old
// one, which holds the lease, goes. Without leader election the manager
// counts as elected once its controllers have started, so until then it
// is starting, and not ready: a host listed while its caches fill would
// wait for them.
func ClusterConfigurationRead(elected <-chan struct{}, leaderElection bool, src core.ClusterSource) healthz.Checker {
	return func(*http.Request) error {
		select {
		case <-elected:
		default:
			if leaderElection {
				return nil
			}
			return errors.New("starting the controllers")
		}
		if _, problem := src.ClusterFacts(); problem == core.ClusterProblemReading {
			return errors.New(problem)
		}
		return nil
	}
}
