package kubeletemu_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/openwmco/wmco/test/kubeletemu"
	"github.com/openwmco/wmco/test/localcluster"
)

// The node log query through the real API server: GET
// /api/v1/nodes/<node>/proxy/logs/?query=kubelet (what `oc adm
// node-logs` and `kubectl get --raw` use) returns the lines of the
// kubelet's log on the host's disk, the API server authenticating to the
// kubelet with its kubelet client certificate and the kubelet
// authorizing it with a SubjectAccessReview.
func TestNodeLogQueryThroughTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{KubeletProxy: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	disk := kubeletemu.NewMemDisk()
	lines := "I1201 18:00:00.000001    4312 server.go:1] Started kubelet\r\nI1201 18:00:01.000002    4312 kubelet.go:2] Node registered\r\n"
	g.Expect(disk.WriteFile(`C:\var\log\kubelet\kubelet.log`, []byte(lines))).To(Succeed())
	g.Expect(disk.WriteFile(`C:\var\log\containerd\containerd.log`, []byte("containerd line\n"))).To(Succeed())
	node := kubeletemu.StartNode(t, c.Config, kubeletemu.NodeOptions{Hostname: "LOGQ-1", Address: "192.0.2.10", Disk: disk})
	g.Expect(node.Name).To(Equal("logq-1"))

	raw := func(uri string) (string, error) {
		b, err := cs.CoreV1().RESTClient().Get().RequestURI(uri).DoRaw(ctx)
		return string(b), err
	}
	// The Node's status carries the kubelet port once the first status is
	// posted; the proxy is usable from then on.
	g.Eventually(func() (string, error) {
		return raw("/api/v1/nodes/logq-1/proxy/logs/?query=kubelet")
	}).WithTimeout(30 * time.Second).Should(Equal(lines))

	out, err := raw("/api/v1/nodes/logq-1/proxy/logs/?query=containerd&query=kubelet")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("containerd line\n"+lines), "several services, in the order asked")

	out, err = raw("/api/v1/nodes/logq-1/proxy/logs/?query=kube-proxy")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("\nlog not found for kube-proxy\n"))

	out, err = raw("/api/v1/nodes/logq-1/proxy/logs/?query=kubelet&tailLines=5")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("options present and query resolved to log files for [kubelet]"))

	_, err = raw("/api/v1/nodes/logq-1/proxy/logs/?query=kubelet%3Becho")
	g.Expect(err).To(MatchError(ContainSubstring("unsupported characters")))

	out, err = raw("/api/v1/nodes/logq-1/proxy/logs/")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`<a href="kubelet/">kubelet/</a>`), "the directory listing of C:\\var\\log")
	out, err = raw("/api/v1/nodes/logq-1/proxy/logs/kubelet/kubelet.log")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal(lines))

	// Straight to the kubelet's port: without a client certificate, or
	// with one the cluster CA did not sign, 401; with a cluster
	// identity that may not read nodes/log, 403.
	node, err = cs.CoreV1().Nodes().Get(ctx, "logq-1", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	url := "https://127.0.0.1:" + strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)) + "/logs/?query=kubelet"
	get := func(certs ...tls.Certificate) (int, string) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}} //nolint:gosec // the kubelet's serving certificate names 192.0.2.10
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := tr.RoundTrip(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get()
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	kcm, err := tls.LoadX509KeyPair(filepath.Join(c.Dir, "kcm.crt"), filepath.Join(c.Dir, "kcm.key"))
	g.Expect(err).NotTo(HaveOccurred())
	code, body := get(kcm)
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(body).To(ContainSubstring("user=system:kube-controller-manager"))
	admin, err := tls.LoadX509KeyPair(c.Config.CertFile, c.Config.KeyFile)
	g.Expect(err).NotTo(HaveOccurred())
	code, body = get(admin)
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(Equal(lines))
	foreign := selfSigned(t)
	code, _ = get(foreign)
	g.Expect(code).To(Equal(http.StatusUnauthorized))
}

// selfSigned is a client certificate no cluster CA signed.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wmco-admin", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
