package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/openwmco/wmco/test/proc"
)

// InstallCRDs creates (or updates) the CRDs in the YAML files under dirs
// (relative paths are taken from the repository root) and waits until each
// is Established.
func InstallCRDs(ctx context.Context, cfg *rest.Config, dirs ...string) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	var files []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		found, err := yamlFiles(d)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("no CustomResourceDefinition in %s", d)
		}
		files = append(files, found...)
	}
	return InstallCRDFiles(ctx, cfg, files...)
}

// InstallCRDFiles creates (or updates) the CRDs in the YAML files named
// (relative paths are taken from the repository root) and waits until each
// is Established. A file without a CustomResourceDefinition is an error.
func InstallCRDFiles(ctx context.Context, cfg *rest.Config, files ...string) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := cs.ApiextensionsV1().CustomResourceDefinitions()
	var names []string
	// served are the group versions each CRD's plural must show in.
	served := map[string][]string{}
	seen := map[string]bool{}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(root, f)
		}
		// A file named twice (openshiftcrds' Files and ClusterConfigFiles
		// share the Infrastructure CRD) is installed once.
		if f = filepath.Clean(f); seen[f] {
			continue
		}
		seen[f] = true
		found, err := readCRDFile(f)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("no CustomResourceDefinition in %s", f)
		}
		for _, crd := range found {
			// The API server's own controllers write a new CRD's status
			// (NamesAccepted, Established) just after its create: an
			// update may find a newer version than it read, and reads it
			// again.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				existing, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
				switch {
				case apierrors.IsNotFound(err):
					_, err = crds.Create(ctx, crd, metav1.CreateOptions{})
				case err == nil:
					crd.ResourceVersion = existing.ResourceVersion
					_, err = crds.Update(ctx, crd, metav1.UpdateOptions{})
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("install CRD %s: %w", crd.Name, err)
			}
			names = append(names, crd.Name)
			for _, v := range crd.Spec.Versions {
				if v.Served {
					gv := crd.Spec.Group + "/" + v.Name
					served[gv] = append(served[gv], crd.Spec.Names.Plural)
				}
			}
		}
	}
	// Waiting for a freshly created CRD has nothing to watch before it
	// exists in the informer caches; a short poll is the simple way.
	// Established is not enough: a client that maps kinds through
	// discovery right after must find them there too.
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			crd, err := crds.Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !established(crd) {
				return false, nil
			}
		}
		for gv, plurals := range served {
			list, err := cs.Discovery().ServerResourcesForGroupVersion(gv)
			if err != nil {
				return false, nil //nolint:nilerr // not served yet: poll again
			}
			for _, p := range plurals {
				if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == p }) {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// crdCreateHold is how long after a CRD became Established kube-apiserver
// holds each create of its custom resources: it sleeps 2 s before one
// (k8s.io/apiextensions-apiserver, pkg/apiserver/customresource_handler.go)
// so that the other servers of an HA control plane have seen the CRD.
const crdCreateHold = 2 * time.Second

// AwaitCRDsSettled waits until every CRD in the cluster has been
// Established for crdCreateHold, so that no create of a custom resource is
// held. A real cluster's CRDs are long established when hosts are listed;
// an environment's are seconds old, and without the wait the first create
// of each kind takes 2 s longer in one run than in another, whichever
// process makes it. It compares what the API server compares: each
// Established condition's LastTransitionTime as stored (to the second)
// with this machine's clock, which the local API server shares. A CRD not
// Established yet is an error: call it after the CRDs are installed.
func AwaitCRDsSettled(ctx context.Context, cfg *rest.Config) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	list, err := cs.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	latest, err := lastEstablished(list.Items)
	if err != nil {
		return err
	}
	t := time.NewTimer(time.Until(latest.Add(crdCreateHold)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lastEstablished is the latest time one of crds became Established.
func lastEstablished(crds []apiextensionsv1.CustomResourceDefinition) (time.Time, error) {
	var latest time.Time
	for i := range crds {
		c := apihelpers.FindCRDCondition(&crds[i], apiextensionsv1.Established)
		if c == nil || c.Status != apiextensionsv1.ConditionTrue {
			return time.Time{}, fmt.Errorf("CRD %s is not Established", crds[i].Name)
		}
		if c.LastTransitionTime.After(latest) {
			latest = c.LastTransitionTime.Time
		}
	}
	return latest, nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established)
}

// yamlFiles lists the .yaml and .yml files of dir, those holding a
// CustomResourceDefinition or not.
func yamlFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		found, err := readCRDFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// readCRDFile decodes every CustomResourceDefinition in the YAML file p.
func readCRDFile(p string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode %s: %w", filepath.Base(p), err)
		}
		if crd.Kind == "CustomResourceDefinition" {
			out = append(out, crd)
		}
	}
}
