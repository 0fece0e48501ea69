package servingcert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/controllers/nodemetrics"
	"github.com/openwmco/wmco/controllers/servingcert"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	pkgcert "github.com/openwmco/wmco/pkg/servingcert"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/promcrds"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

func installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	if err := promcrds.Install(t.Context(), ctrltest.Cluster.Config); err != nil {
		t.Fatalf("install the ServiceMonitor and PrometheusRule CRDs: %v", err)
	}
}

func internalIPs(n *corev1.Node) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out = append(out, a.Address)
		}
	}
	return out
}

// cleanup removes, when the test ends, what the operator or the test
// made for certificates and monitoring, so that the next test starts
// without them.
func cleanup(t *testing.T) {
	t.Cleanup(func() {
		objs := []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.ExporterSecretName}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.CASecretName}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.MetricsSecretName}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.CAConfigMapName}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.ScraperTokenSecret}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.ScraperServiceAccount}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: servingcert.ScraperBinding}},
		}
		for _, sm := range servingcert.ServiceMonitors(ctrltest.Namespace, false) {
			objs = append(objs, sm)
		}
		if rules, err := servingcert.PrometheusRule(ctrltest.Namespace); err == nil {
			objs = append(objs, rules)
		}
		for _, o := range objs {
			if err := ctrltest.Client.Delete(context.Background(), o); client.IgnoreNotFound(err) != nil {
				t.Errorf("delete %s: %v", o.GetName(), err)
			}
		}
	})
}

// caPool reads the ConfigMap the ServiceMonitors trust.
func caPool(g Gomega) *x509.CertPool {
	cm := &corev1.ConfigMap{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.CAConfigMapName}, cm)).To(Succeed())
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM([]byte(cm.Data[servingcert.CAConfigMapKey]))).To(BeTrue(), "the ConfigMap holds a CA")
	return pool
}

func verify(g Gomega, certPEM []byte, pool *x509.CertPool, name string) {
	cert, err := pkgcert.ParseCertificate(certPEM)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	g.Expect(err).NotTo(HaveOccurred(), name)
}

// appliedExporterArgs are windows_exporter's arguments in the plan the
// host applied.
func appliedExporterArgs(g Gomega, h *ctrltest.SimHost) []string {
	data, err := h.Host.Disk().ReadFile(wicdapi.AppliedPlanPath)
	g.Expect(err).NotTo(HaveOccurred())
	var plan wicdapi.Plan
	g.Expect(json.Unmarshal(data, &plan)).To(Succeed())
	for _, s := range plan.Services {
		if s.Name == nodeconfig.ServiceWindowsExporter {
			return s.Args
		}
	}
	g.Expect("windows_exporter").To(BeEmpty(), "no windows_exporter service in the applied plan")
	return nil
}

// prometheusRule is the operator's PrometheusRule as the API server
// stored it.
func prometheusRule(g Gomega) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("monitoring.coreos.com/v1")
	u.SetKind("PrometheusRule")
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.RulesName}, u)).To(Succeed())
	return u
}

func serviceMonitor(g Gomega, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("monitoring.coreos.com/v1")
	u.SetKind("ServiceMonitor")
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ctrltest.Namespace, Name: name}, u)).To(Succeed())
	return u
}

// On plain Kubernetes a joining host gets a windows_exporter certificate
// from the operator's CA for its node name and InternalIP, which
// verifies against the CA published in the ConfigMap wmco-serving-ca;
// the key is readable by administrators only; windows_exporter serves TLS
// with them. The metrics endpoint's certificate verifies for the
// wmco-metrics Service's name. Both ServiceMonitors pass the Prometheus
// Operator's schema unchanged. A new CA reissues the host's certificate,
// which restarts windows_exporter and no other service.
func TestExporterCertificateFromTheOperatorsCA(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	installServiceMonitorCRD(t)
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	cleanup(t) // after the operator stops
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	ips := internalIPs(node)
	g.Expect(ips).NotTo(BeEmpty())

	disk := h.Host.Disk()
	var pool *x509.CertPool
	g.Eventually(func(g Gomega) {
		pool = caPool(g)
		certPEM, err := disk.ReadFile(nodeconfig.WindowsExporterCertPath)
		g.Expect(err).NotTo(HaveOccurred())
		for _, name := range append([]string{node.Name}, ips...) {
			verify(g, certPEM, pool, name)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	certPEM, _ := disk.ReadFile(nodeconfig.WindowsExporterCertPath)
	cert, err := pkgcert.ParseCertificate(certPEM)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cert.Verify(x509.VerifyOptions{DNSName: "another-node", Roots: pool})
	g.Expect(err).To(HaveOccurred(), "no other name")
	g.Expect(disk.Security(nodeconfig.WindowsExporterKeyPath)).To(Equal(wicd.AdministratorsKeysSDDL))
	g.Expect(disk.Security(nodeconfig.WindowsExporterCertPath)).To(BeEmpty())
	web, err := disk.ReadFile(nodeconfig.WindowsExporterWebConfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(web)).To(ContainSubstring("cert_file: '" + nodeconfig.WindowsExporterCertPath + "'"))
	g.Expect(appliedExporterArgs(g, h)).To(ContainElement("--web.config.file=" + nodeconfig.WindowsExporterWebConfigPath))
	st, err := h.Services.Query(ctx, nodeconfig.ServiceWindowsExporter)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Running).To(BeTrue())

	// The metrics endpoint's certificate.
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.MetricsSecretName}, s)).To(Succeed())
		verify(g, s.Data[corev1.TLSCertKey], caPool(g), "wmco-metrics."+ctrltest.Namespace+".svc")
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Prometheus' identity: a token, bound to the metrics reader role.
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.ScraperTokenSecret}, s)).To(Succeed())
		g.Expect(s.Data[corev1.ServiceAccountTokenKey]).NotTo(BeEmpty(), "kube-controller-manager filled the token")
		crb := &rbacv1.ClusterRoleBinding{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: servingcert.ScraperBinding}, crb)).To(Succeed())
		g.Expect(crb.RoleRef.Name).To(Equal(servingcert.MetricsReaderRole))
		g.Expect(crb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: servingcert.ScraperServiceAccount, Namespace: ctrltest.Namespace}))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The ServiceMonitors, as the API server stored them after checking
	// and pruning against the CRD's schema: nothing was dropped.
	want := servingcert.ServiceMonitors(ctrltest.Namespace, false)
	g.Eventually(func(g Gomega) {
		for _, w := range want {
			got := serviceMonitor(g, w.GetName())
			g.Expect(got.Object["spec"]).To(Equal(w.Object["spec"]), w.GetName())
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	eps, _, _ := unstructured.NestedSlice(serviceMonitor(g, servingcert.NodesMonitor).Object, "spec", "endpoints")
	g.Expect(eps).To(HaveLen(1))
	g.Expect(eps[0]).NotTo(HaveKey("bearerTokenFile"))
	g.Expect(eps[0].(map[string]any)["tlsConfig"]).NotTo(HaveKey("insecureSkipVerify"))
	// The schema is enforced: a ServiceMonitor it forbids is refused.
	bad := want[1].DeepCopy()
	bad.SetName("bad")
	g.Expect(unstructured.SetNestedField(bad.Object, []any{map[string]any{"port": "metrics", "scheme": "ftp"}}, "spec", "endpoints")).To(Succeed())
	g.Expect(ctrltest.Client.Create(ctx, bad)).To(MatchError(ContainSubstring("scheme")))

	// The alerts of config/prometheus/rules.yaml, stored whole; a group
	// someone removed comes back.
	rules, err := servingcert.PrometheusRule(ctrltest.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	groups, _, _ := unstructured.NestedSlice(rules.Object, "spec", "groups")
	g.Expect(len(groups)).To(BeNumerically(">", 1))
	g.Eventually(func(g Gomega) {
		got := prometheusRule(g)
		g.Expect(got.Object["spec"]).To(Equal(rules.Object["spec"]))
		g.Expect(got.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "wmco"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	edited := prometheusRule(g)
	g.Expect(unstructured.SetNestedSlice(edited.Object, groups[:1], "spec", "groups")).To(Succeed())
	g.Expect(ctrltest.Client.Update(ctx, edited)).To(Succeed())
	// Nothing the controller watches changes: a Secret it keeps does.
	g.Expect(ctrltest.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.ScraperTokenSecret}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(prometheusRule(g).Object["spec"]).To(Equal(rules.Object["spec"]))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the removed group is back")

	// A new CA: the host gets a new certificate, windows_exporter alone
	// restarts.
	starts := map[string]int{}
	services := []string{nodeconfig.ServiceWindowsExporter, nodeconfig.ServiceKubelet, nodeconfig.ServiceContainerd, nodeconfig.ServiceCSIProxy}
	for _, s := range services {
		starts[s] = h.Services.Starts(s)
	}
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.CASecretName}}
	g.Expect(ctrltest.Client.Delete(ctx, ca)).To(Succeed())
	g.Eventually(func(g Gomega) {
		newPool := caPool(g)
		certPEM, err := disk.ReadFile(nodeconfig.WindowsExporterCertPath)
		g.Expect(err).NotTo(HaveOccurred())
		verify(g, certPEM, newPool, ips[0])
		c, err := pkgcert.ParseCertificate(certPEM)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = c.Verify(x509.VerifyOptions{DNSName: ips[0], Roots: pool})
		g.Expect(err).To(HaveOccurred(), "signed by the new CA")
		g.Expect(h.Services.Starts(nodeconfig.ServiceWindowsExporter)).To(Equal(starts[nodeconfig.ServiceWindowsExporter] + 1))
	}).WithTimeout(time.Minute).Should(Succeed())
	onlyExporterRestarted(g, h, services, starts)
}

// testServiceCA stands in for OpenShift's service CA: an ECDSA CA that
// signs serving certificates for a Service's names.
type testServiceCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newServiceCA(t *testing.T) *testServiceCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "openshift-service-serving-signer@1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testServiceCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a serving certificate and key for the Service's names.
func (ca *testServiceCA) issue(t *testing.T, service string, serial int64) map[string][]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: service + "." + ctrltest.Namespace + ".svc"},
		DNSNames:  pkgcert.ServiceDNSNames(service, ctrltest.Namespace, ""),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k}),
	}
}

// On OpenShift the operator asks the service CA for the node metrics
// Service's certificate and copies the Secret the service CA writes to
// the hosts; Prometheus verifies it by the Service's name with the
// bundle the service CA injects into wmco-serving-ca. A rotated Secret
// reaches the hosts and restarts windows_exporter alone.
func TestExporterCertificateFromTheServiceCA(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	installServiceMonitorCRD(t)
	hybrid := openshiftcrds.DefaultHybridOverlay
	ctrltest.OpenShift(t, openshiftcrds.OVNOptions{HybridOverlay: &hybrid})
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	cleanup(t)
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{Platform: cluster.OpenShift})

	// The operator asks for a certificate and a CA bundle.
	g.Eventually(func(g Gomega) {
		svc := &corev1.Service{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: nodemetrics.ServiceName}, svc)).To(Succeed())
		g.Expect(svc.Annotations).To(HaveKeyWithValue(servingcert.ServingCertAnnotation, servingcert.ExporterSecretName))
		cm := &corev1.ConfigMap{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.CAConfigMapName}, cm)).To(Succeed())
		g.Expect(cm.Annotations).To(HaveKeyWithValue(servingcert.InjectCABundleAnnotation, "true"))
		g.Expect(cm.Data).To(BeEmpty(), "the service CA writes it")
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// What the service CA does.
	sca := newServiceCA(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: servingcert.ExporterSecretName},
		Type:       corev1.SecretTypeTLS, Data: sca.issue(t, nodemetrics.ServiceName, 2),
	}
	g.Expect(ctrltest.Client.Create(ctx, secret)).To(Succeed())
	cm := &corev1.ConfigMap{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: servingcert.CAConfigMapName}, cm)).To(Succeed())
	cm.Data = map[string]string{servingcert.CAConfigMapKey: string(sca.pem)}
	g.Expect(ctrltest.Client.Update(ctx, cm)).To(Succeed())

	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	disk := h.Host.Disk()
	serverName := pkgcert.ServerName(nodemetrics.ServiceName, ctrltest.Namespace)
	g.Eventually(func(g Gomega) {
		certPEM, err := disk.ReadFile(nodeconfig.WindowsExporterCertPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(certPEM).To(Equal(secret.Data[corev1.TLSCertKey]))
		keyPEM, err := disk.ReadFile(nodeconfig.WindowsExporterKeyPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(keyPEM).To(Equal(secret.Data[corev1.TLSPrivateKeyKey]))
		verify(g, certPEM, caPool(g), serverName)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(disk.Security(nodeconfig.WindowsExporterKeyPath)).To(Equal(wicd.AdministratorsKeysSDDL))
	g.Expect(appliedExporterArgs(g, h)).To(ContainElement("--web.config.file=" + nodeconfig.WindowsExporterWebConfigPath))

	// The nodes' ServiceMonitor verifies by the Service's name.
	g.Eventually(func(g Gomega) {
		eps, _, _ := unstructured.NestedSlice(serviceMonitor(g, servingcert.NodesMonitor).Object, "spec", "endpoints")
		g.Expect(eps).To(HaveLen(1))
		tlsConfig := eps[0].(map[string]any)["tlsConfig"].(map[string]any)
		g.Expect(tlsConfig["serverName"]).To(Equal(serverName))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The service CA rotates the certificate.
	starts := map[string]int{}
	services := []string{nodeconfig.ServiceWindowsExporter, nodeconfig.ServiceKubelet, nodeconfig.ServiceContainerd, nodeconfig.ServiceHybridOverlay, nodeconfig.ServiceKubeProxy}
	for _, s := range services {
		starts[s] = h.Services.Starts(s)
	}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data = sca.issue(t, nodemetrics.ServiceName, 3)
	g.Expect(ctrltest.Client.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		certPEM, err := disk.ReadFile(nodeconfig.WindowsExporterCertPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(certPEM).To(Equal(secret.Data[corev1.TLSCertKey]))
		g.Expect(h.Services.Starts(nodeconfig.ServiceWindowsExporter)).To(Equal(starts[nodeconfig.ServiceWindowsExporter] + 1))
	}).WithTimeout(time.Minute).Should(Succeed())
	onlyExporterRestarted(g, h, services, starts)
	web, err := disk.ReadFile(nodeconfig.WindowsExporterWebConfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Contains(string(web), "PRIVATE")).To(BeFalse())
}

// The controller needs no more than the generated RBAC: with exactly
// that it makes the CA, its ConfigMap, the metrics endpoint's
// certificate, Prometheus' identity (binding the metrics reader role)
// and the ServiceMonitors; a TLS server serving the loaded certificate
// is verified by a client that trusts the ConfigMap and expects the
// metrics Service's name, as Prometheus does.
func TestServingCertificatesWithGeneratedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	installServiceMonitorCRD(t)
	user := "system:serviceaccount:" + ctrltest.Namespace + ":servingcert"
	ctrltest.GrantGeneratedRBAC(t, user, user, ctrltest.Namespace)
	cfg, err := ctrltest.Cluster.UserConfig(user)
	g.Expect(err).NotTo(HaveOccurred())
	cleanup(t)
	metrics := &servingcert.MetricsCertificate{}
	ctrltest.StartManagerWithCache(t, cfg, cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{ctrltest.Namespace: {}}},
	}}, func(mgr ctrl.Manager) error {
		return (&servingcert.Reconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: ctrltest.Namespace,
			Authority: &servingcert.Authority{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: ctrltest.Namespace},
			Metrics:   metrics,
		}).SetupWithManager(mgr)
	})

	rules, err := servingcert.PrometheusRule(ctrltest.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		for _, w := range servingcert.ServiceMonitors(ctrltest.Namespace, false) {
			g.Expect(serviceMonitor(g, w.GetName()).Object["spec"]).To(Equal(w.Object["spec"]))
		}
		g.Expect(prometheusRule(g).Object["spec"]).To(Equal(rules.Object["spec"]))
		crb := &rbacv1.ClusterRoleBinding{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: servingcert.ScraperBinding}, crb)).To(Succeed())
		_, err := metrics.GetCertificate(nil)
		g.Expect(err).NotTo(HaveOccurred())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	metrics.TLSOpt(srv.TLS)
	srv.StartTLS()
	defer srv.Close()
	get := func(serverName string) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: caPool(g), ServerName: serverName, MinVersion: tls.VersionTLS12,
		}}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	g.Expect(get(pkgcert.ServerName(servingcert.MetricsServiceName, ctrltest.Namespace))).To(Succeed())
	g.Expect(get("windows-exporter."+ctrltest.Namespace+".svc")).NotTo(Succeed(), "another name")
}

// onlyExporterRestarted checks, for a while, that windows_exporter started
// once more than starts says and every other service of services not again.
func onlyExporterRestarted(g Gomega, h *ctrltest.SimHost, services []string, starts map[string]int) {
	g.Consistently(func(g Gomega) {
		for _, s := range services {
			want := starts[s]
			if s == nodeconfig.ServiceWindowsExporter {
				want++
			}
			g.Expect(h.Services.Starts(s)).To(Equal(want), s)
		}
	}).WithTimeout(2 * time.Second).Should(Succeed())
}
