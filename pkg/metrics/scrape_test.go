package metrics_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/metrics"
	"github.com/openwmco/wmco/test/ctrltest"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

// TestScrapeReadsTheAPIServer reads WindowsInstances and CSRs from a real
// API server and checks what the registry gathers: conditions with their
// reasons, and the creation time of the oldest pending CSR of a host,
// not of a CSR of another node.
func TestScrapeReadsTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	wi := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-scrape"},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "192.0.2.40", Username: "Administrator"},
	}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(ctx, wi) })
	now := metav1.Now()
	wi.Status = wmcov1.WindowsInstanceStatus{NodeName: "metrics-scrape-node", Phase: wmcov1.PhaseFailed, Conditions: []metav1.Condition{
		{Type: wmcov1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "HostKeyMismatch", Message: "m", LastTransitionTime: now},
		{Type: wmcov1.ConditionReachable, Status: metav1.ConditionFalse, Reason: "HostKeyMismatch", Message: "m", LastTransitionTime: now},
	}}
	g.Expect(ctrltest.Client.Status().Update(ctx, wi)).To(Succeed())

	csr := func(name, cn string) *certificatesv1.CertificateSigningRequest {
		c := &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request:    metrics.KubeletCSRPEM(t, cn),
				SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
				Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
			},
		}
		g.Expect(ctrltest.Client.Create(ctx, c)).To(Succeed())
		t.Cleanup(func() { _ = ctrltest.Client.Delete(ctx, c) })
		return c
	}
	mine := csr("metrics-scrape-windows", "system:node:metrics-scrape-node")
	csr("metrics-scrape-linux", "system:node:metrics-scrape-linux")

	metrics.SetInstanceReader(ctrltest.Client)
	t.Cleanup(func() { metrics.SetInstanceReader(nil) })
	g.Eventually(ctrltest.Metrics).Should(And(
		HaveKeyWithValue("wmco_instance_status_condition,node=metrics-scrape-node,reason=HostKeyMismatch,status=True,type=Stalled,windowsinstance=metrics-scrape", 1.0),
		HaveKeyWithValue("wmco_instance_status_condition,node=metrics-scrape-node,reason=HostKeyMismatch,status=False,type=Reachable,windowsinstance=metrics-scrape", 1.0),
		HaveKeyWithValue("wmco_csr_pending_oldest_timestamp_seconds,windowsinstance=metrics-scrape", float64(mine.CreationTimestamp.Unix())),
		HaveKeyWithValue("wmco_instances,phase=Failed", 1.0),
		// Counters exist at zero before anything failed.
		HaveKeyWithValue("wmco_ssh_errors_total,type=auth", 0.0),
		HaveKeyWithValue("wmco_csr_decisions_total,result=pending", 0.0),
		HaveKeyWithValue("wmco_upgrade_duration_seconds,result=rolledback", 0.0),
	))
	got, err := ctrltest.Metrics()
	g.Expect(err).NotTo(HaveOccurred())
	for k := range got {
		g.Expect(k).NotTo(ContainSubstring("metrics-scrape-linux"), fmt.Sprintf("series %s names another node's CSR", k))
	}
	checkMetricNamesFile(t)
}

// checkMetricNamesFile keeps hack/monitoring's list of the operator's
// metric names (what the dashboard and rule tests check their queries
// against) equal to a real scrape of the registry; the caller has objects
// in place so that every collector reports.
func checkMetricNamesFile(t *testing.T) {
	g := NewWithT(t)
	families, err := crmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "wmco_") {
			continue
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			names = append(names, name+"_bucket", name+"_count", name+"_sum")
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	const file = "../../hack/monitoring/testdata/operator-metrics.txt"
	want := "# The operator's metric names, from a scrape of its registry\n" +
		"# (pkg/metrics TestScrapeReadsTheAPIServer keeps this file equal to it).\n" +
		strings.Join(names, "\n") + "\n"
	if os.Getenv("WMCO_UPDATE_METRIC_NAMES") == "1" {
		g.Expect(os.WriteFile(file, []byte(want), 0o644)).To(Succeed())
	}
	got, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(got)).To(Equal(want), "rerun with WMCO_UPDATE_METRIC_NAMES=1 to update %s", file)
}
