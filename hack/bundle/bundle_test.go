package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
)

// repoRoot is the repository whose config/ the tests render.
// WMCO_BUNDLE_ROOT points them at another checkout (e.g. a configuration
// that is not committed yet).
func repoRoot(t *testing.T) string {
	t.Helper()
	if r := os.Getenv("WMCO_BUNDLE_ROOT"); r != "" {
		return r
	}
	return filepath.Join("..", "..")
}

// testOptions are `make bundle`'s defaults.
func testOptions(t *testing.T, root string) options {
	t.Helper()
	v, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(v))
	return options{
		Root: root, Version: version, Image: "ghcr.io/openwmco/wmco:v" + version, Package: "openwmco",
		Channels: []string{"candidate"}, MinKubeVersion: "1.37.0",
	}
}

// generateInto writes the bundle generated from o.Root's config into a
// temporary directory and returns that directory's bundle/.
func generateInto(t *testing.T, o options) (string, files) {
	t.Helper()
	fs, err := generate(o)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	out := t.TempDir()
	if err := write(out, fs); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, "bundle"), fs
}

// acceptedWarning is a validator warning the project has looked at and
// accepts, with the reason.
type acceptedWarning struct {
	reason string
	match  func(msg string) bool
}

var acceptedWarnings = []acceptedWarning{{
	reason: "RBAC rules name resources, not versions: the validator warns on any rule for events.k8s.io events, policy " +
		"poddisruptionbudgets, discovery.k8s.io endpointslices or node.k8s.io runtimeclasses (their v1beta1 versions went in 1.25); " +
		"the operator uses events.k8s.io/v1 (controller-runtime's recorder), policy/v1 (drain), discovery.k8s.io/v1 " +
		"(the windows-exporter EndpointSlices) and node.k8s.io/v1 (RuntimeClasses)",
	match: onlyRBACRulesFor("events", "poddisruptionbudgets", "endpointslices", "runtimeclasses"),
}}

// removedAPIs parses the removed-APIs warning's "Migrate the API(s) for
// <resource>: ([<where>...])" parts.
var removedAPIs = regexp.MustCompile(`([a-z]+): \(\[(.*?)\]\)`)

// onlyRBACRulesFor matches the v1.25 removed-APIs warning when it names
// only the given resources and only in the CSV's permission rules (an
// object of a removed API version in the bundle is never accepted).
func onlyRBACRulesFor(resources ...string) func(string) bool {
	return func(msg string) bool {
		if !strings.Contains(msg, "deprecated and removed in v1.25") {
			return false
		}
		parts := removedAPIs.FindAllStringSubmatch(msg, -1)
		if len(parts) == 0 {
			return false
		}
		for _, p := range parts {
			if !slices.Contains(resources, p[1]) {
				return false
			}
			for where := range strings.FieldsSeq(p[2]) {
				if !strings.HasPrefix(strings.Trim(where, `"`), "ClusterServiceVersion.Spec.InstallStrategy.StrategySpec.") {
					return false
				}
			}
		}
		return true
	}
}

// suites are the validators the bundle must pass. Not run:
// MultipleArchitecturesValidator inspects the operator image in its
// registry (`docker manifest inspect`), which needs a container engine and
// the network; the CSV's operatorframework.io/arch and os labels state
// what the image is built for (linux/amd64).
// CommunityOperatorValidator is deprecated in v0.30.0 (moved to
// ocp-olm-catalog-validator) and checks only OpenShift catalog
// annotations (com.redhat.openshift.versions) that this bundle does not
// claim.
var suites = []struct {
	name       string
	validators interfaces.Validators
}{
	{"default", validation.DefaultBundleValidators},
	{"operatorhub", interfaces.Validators{validation.OperatorHubV2Validator, validation.StandardCapabilitiesValidator, validation.StandardCategoriesValidator}},
	{"good-practices", interfaces.Validators{validation.GoodPracticesValidator}},
	{"objects", interfaces.Validators{validation.ObjectValidator}},
	{"alpha-deprecated-apis", interfaces.Validators{validation.AlphaDeprecatedAPIsValidator}},
}

// TestBundleValidates generates the bundle from config/ and runs
// operator-framework/api's validators on it as `operator-sdk bundle
// validate --select-optional suite=operatorframework` would: any error
// fails, and so does any warning not listed in acceptedWarnings.
func TestBundleValidates(t *testing.T) {
	o := testOptions(t, repoRoot(t))
	dir, _ := generateInto(t, o)
	bundle, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		t.Fatalf("load bundle: %v", err)
	}
	if bundle.CSV == nil || len(bundle.V1CRDs) != 2 {
		t.Fatalf("bundle holds CSV %v and %d CRDs, want a CSV and 2 CRDs", bundle.CSV != nil, len(bundle.V1CRDs))
	}
	if bundle.DefaultChannel != "candidate" || len(bundle.Channels) != 1 || bundle.Channels[0] != "candidate" {
		t.Errorf("bundle channels %q, default channel %q; want candidate", bundle.Channels, bundle.DefaultChannel)
	}
	// The deprecated-APIs check is made for the oldest Kubernetes the
	// bundle installs on.
	optional := map[string]string{"k8s-version": o.MinKubeVersion}
	for _, s := range suites {
		results := s.validators.Validate(bundle, optional)
		var nErr, nWarn int
		for _, r := range results {
			for _, e := range r.Errors {
				nErr++
				t.Errorf("%s: error: %s", s.name, e.Error())
			}
			for _, w := range r.Warnings {
				nWarn++
				if a, ok := accepted(w); ok {
					t.Logf("%s: accepted warning (%s): %s", s.name, a.reason, w.Error())
					continue
				}
				t.Errorf("%s: warning not accepted: %s", s.name, w.Error())
			}
		}
		t.Logf("%s: %d validators, %d errors, %d warnings", s.name, len(s.validators), nErr, nWarn)
	}
}

func accepted(w errors.Error) (acceptedWarning, bool) {
	for _, a := range acceptedWarnings {
		if a.match(w.Error()) {
			return a, true
		}
	}
	return acceptedWarning{}, false
}
