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

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"

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
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(root, f)
		}
		found, err := readCRDFile(f)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("no CustomResourceDefinition in %s", f)
		}
		for _, crd := range found {
			existing, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = crds.Create(ctx, crd, metav1.CreateOptions{})
			case err == nil:
				crd.ResourceVersion = existing.ResourceVersion
				_, err = crds.Update(ctx, crd, metav1.UpdateOptions{})
			}
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

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
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
