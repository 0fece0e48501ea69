package kubeletemu

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// MemDisk is an in-memory Disk whose paths are compared as Windows does,
// ignoring case, for tests that run the emulator without a simulated host.
type MemDisk struct {
	mu    sync.Mutex
	files map[string][]byte
	dirs  map[string]string // folded path -> path as created
}

// NewMemDisk returns an empty disk.
func NewMemDisk() *MemDisk {
	return &MemDisk{files: map[string][]byte{}, dirs: map[string]string{}}
}

// errAccessDenied is Windows' answer to writing a folder as a file.
var errAccessDenied = errors.New("access is denied")

func fold(p string) string { return strings.ToUpper(strings.TrimRight(p, `\`)) }

// ReadFile implements Disk.
func (d *MemDisk) ReadFile(p string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.files[fold(p)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return slices.Clone(b), nil
}

// WriteFile implements Disk; it creates the file's folders.
func (d *MemDisk) WriteFile(p string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, isDir := d.dirs[fold(p)]; isDir {
		return &fs.PathError{Op: "open", Path: p, Err: errAccessDenied}
	}
	if i := strings.LastIndexByte(p, '\\'); i > 0 {
		d.mkdirAll(p[:i])
	}
	d.files[fold(p)] = slices.Clone(data)
	return nil
}

// MkdirAll implements Disk.
func (d *MemDisk) MkdirAll(p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mkdirAll(p)
	return nil
}

func (d *MemDisk) mkdirAll(p string) {
	p = strings.TrimRight(p, `\`)
	for i := range p {
		if p[i] == '\\' && i > 2 {
			if _, ok := d.dirs[fold(p[:i])]; !ok {
				d.dirs[fold(p[:i])] = p[:i]
			}
		}
	}
	if _, ok := d.dirs[fold(p)]; !ok {
		d.dirs[fold(p)] = p
	}
}

// ReadDir implements Disk: the entries of a folder, sorted by name.
func (d *MemDisk) ReadDir(p string) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := fold(p)
	if _, ok := d.dirs[dir]; !ok {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	var out []fs.DirEntry
	for k, orig := range d.dirs {
		if rest, ok := strings.CutPrefix(k, dir+`\`); ok && !strings.Contains(rest, `\`) {
			out = append(out, memEntry{name: orig[strings.LastIndexByte(orig, '\\')+1:], dir: true})
		}
	}
	for k := range d.files {
		if rest, ok := strings.CutPrefix(k, dir+`\`); ok && !strings.Contains(rest, `\`) {
			out = append(out, memEntry{name: rest})
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type memEntry struct {
	name string
	dir  bool
}

func (e memEntry) Name() string { return e.name }
func (e memEntry) IsDir() bool  { return e.dir }
func (e memEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e memEntry) Info() (fs.FileInfo, error) { return nil, errors.New("not supported") }

// NodeOptions describe a node StartNode runs.
type NodeOptions struct {
	// Hostname of the host; the Node is named after it in lower case.
	Hostname string
	// Address is the Node's InternalIP. The API server proxies only to
	// global unicast addresses: use one of 192.0.2.0/24 and a control
	// plane started with localcluster Options.KubeletProxy.
	Address string
	// Disk holds the files the kubelet serves (under NodeLogDir); StartNode
	// writes the kubelet's configuration onto it. Nil: a new MemDisk.
	Disk Disk
	// DisableLogQuery leaves enableSystemLogQuery unset.
	DisableLogQuery bool
	// StatusInterval and LeaseDuration of the kubelet (Config); zero:
	// 1s and 4s.
	StatusInterval, LeaseDuration time.Duration
}

// KubeletConfigYAML is the configuration StartNode gives the kubelet: the
// authentication and authorization a node of the operator has, and the
// node log query enabled.
const KubeletConfigYAML = `kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: 'C:\k\ca.crt'}
authorization: {mode: Webhook}
serverTLSBootstrap: true
`

// StartNode runs an emulated kubelet against the cluster admin (an admin
// rest.Config with certificate files, as localcluster's) until the test
// ends: it bootstraps with the admin's credentials, and StartNode
// approves its client and serving CSRs, so that the Node is registered
// and its HTTPS port serves. It returns the Node once the serving
// certificate is on the disk.
func StartNode(t testing.TB, admin *rest.Config, o NodeOptions) *corev1.Node {
	t.Helper()
	if o.Disk == nil {
		o.Disk = NewMemDisk()
	}
	name := strings.ToLower(o.Hostname)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	kc := KubeletConfigYAML
	if !o.DisableLogQuery {
		kc += "enableSystemLogQuery: true\n"
	}
	certPEM, err := os.ReadFile(admin.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(admin.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	boot := clientcmdapi.NewConfig()
	boot.Clusters["c"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	boot.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	boot.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	boot.CurrentContext = "c"
	bootData, err := clientcmd.Write(*boot)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string][]byte{
		`C:\k\kubelet.conf`: []byte(kc), `C:\k\ca.crt`: admin.CAData, `C:\k\bootstrap-kubeconfig`: bootData,
	} {
		if err := o.Disk.WriteFile(p, data); err != nil {
			t.Fatal(err)
		}
	}
	if o.StatusInterval == 0 {
		o.StatusInterval = time.Second
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 4 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Args: []string{`--config=C:\k\kubelet.conf`, `--kubeconfig=C:\k\kubeconfig`, `--bootstrap-kubeconfig=C:\k\bootstrap-kubeconfig`},
			Disk: o.Disk, Host: Host{Hostname: o.Hostname, Addresses: []string{o.Address}, OSBuild: 20348},
			StatusInterval: o.StatusInterval, LeaseDuration: o.LeaseDuration,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("kubelet %s: %v", name, err)
		}
	})
	go approveNodeCSRs(ctx, t, cs, name)
	g := gomega.NewWithT(t)
	g.Eventually(func() error {
		select {
		case err := <-done:
			return gomega.StopTrying(fmt.Sprintf("kubelet %s exited: %v", name, err))
		default:
		}
		_, err := o.Disk.ReadFile(`C:\var\lib\kubelet\pki\kubelet-server-current.pem`)
		return err
	}).WithTimeout(60*time.Second).WithPolling(50*time.Millisecond).Should(gomega.Succeed(), "the kubelet's serving certificate")
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// approveNodeCSRs approves every CSR for system:node:<name> as it is
// created, until ctx ends.
func approveNodeCSRs(ctx context.Context, t testing.TB, cs kubernetes.Interface, name string) {
	csrs := cs.CertificatesV1().CertificateSigningRequests()
	for ctx.Err() == nil {
		list, err := csrs.List(ctx, metav1.ListOptions{})
		if err != nil {
			retryPause(ctx)
			continue
		}
		for i := range list.Items {
			approve(ctx, t, cs, &list.Items[i], name)
		}
		w, err := csrs.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			retryPause(ctx)
			continue
		}
		for ev := range w.ResultChan() {
			if csr, ok := ev.Object.(*certificatesv1.CertificateSigningRequest); ok && ev.Type == watch.Added {
				approve(ctx, t, cs, csr, name)
			}
		}
		w.Stop()
	}
}

// retryPause waits a little before a failed request is retried.
func retryPause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
}

// approve approves csr if it is pending and names the node.
func approve(ctx context.Context, t testing.TB, cs kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, name string) {
	if len(csr.Status.Conditions) > 0 || !csrForNode(csr, name) {
		return
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApproved",
		Message: "approved for the emulated kubelet " + name,
	})
	if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		t.Logf("approve CSR %s: %v", csr.Name, err)
	}
}

// csrForNode reports whether the CSR asks for a certificate of
// system:node:<name>.
func csrForNode(csr *certificatesv1.CertificateSigningRequest, name string) bool {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	return err == nil && req.Subject.CommonName == "system:node:"+name
}
