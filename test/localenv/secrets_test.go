/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Two hosts join and are upgraded with the operator logging at its most
// verbose; then the operator's log, every Event, every object status the
// operator writes and the log files on the hosts are scanned for the SSH
// private key, every bootstrap token issued and the credentials of the
// operator's kubeconfig: none may appear.
func TestNoSecretsAnywhere(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	dir, older, newer := twoPayloads(t)
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: 2, PayloadDir: dir, Log: testLog{t}, APIServerVersion: "v1.36.9",
		Host:         simagent.Options{KubeletBinaries: testpayload.KubeletBinaries(older, newer)},
		OperatorArgs: []string{"--version-poll-interval=1s", "--zap-log-level=10"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()
	defer func() {
		if t.Failed() {
			t.Logf("operator log (last lines):\n%s", proc.TailFile(env.OperatorLog, 60))
		}
	}()

	// Every bootstrap token the operator stores, as it stores it: they
	// are deleted once the hosts have joined.
	tokens := watchBootstrapTokens(ctx, t, env)

	g.Expect(env.SetInventory(ctx, env.Hosts...)).To(Succeed())
	waitPayload := func(version, kube string) {
		g.Eventually(func(g Gomega) {
			var list wmcov1.WindowsInstanceList
			g.Expect(env.Client.List(ctx, &list)).To(Succeed())
			g.Expect(list.Items).To(HaveLen(len(env.Hosts)))
			for _, wi := range list.Items {
				g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Name, wi.Status.Message)
				g.Expect(wi.Status.PayloadVersion).To(Equal(version), wi.Name)
				g.Expect(wi.Status.KubeletVersion).To(Equal(kube), wi.Name)
			}
		}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	}
	waitPayload(older.Version, "v1.36.9")
	// The token each host was given is in its bootstrap kubeconfig.
	for _, h := range env.Hosts {
		data, err := h.Host.Disk().ReadFile(nodeconfig.BootstrapKubeconfigPath)
		g.Expect(err).NotTo(HaveOccurred(), "the bootstrap kubeconfig stays on %s", h.Name)
		kc, err := clientcmd.Load(data)
		g.Expect(err).NotTo(HaveOccurred())
		for _, a := range kc.AuthInfos {
			if a.Token != "" {
				tokens.add(a.Token)
			}
		}
	}
	t.Log("Restarting kube-apiserver as v1.37.2: the hosts are upgraded")
	g.Expect(env.Cluster.RestartAPIServer(ctx, "")).To(Succeed())
	waitPayload(newer.Version, "v1.37.2")

	secrets := map[string][]string{"the SSH private key": keyFragments(env.KeyPEM)}
	issued := tokens.list()
	g.Expect(issued).NotTo(BeEmpty(), "the joins issued bootstrap tokens")
	secrets["a bootstrap token"] = issued
	secrets["the operator's kubeconfig credentials"] = kubeconfigCredentials(t, env.Kubeconfig)
	t.Logf("looking for %d key fragments, %d bootstrap tokens, %d kubeconfig credentials",
		len(secrets["the SSH private key"]), len(issued), len(secrets["the operator's kubeconfig credentials"]))

	places := map[string][]byte{}
	log, err := os.ReadFile(env.OperatorLog)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Count(log, []byte("\n"))).To(BeNumerically(">", 100), "the operator logged its debug lines")
	places["the operator's log"] = log
	// client-go logs request and response bodies at its most verbose,
	// protobuf ones as hex dumps: read them as the bytes they dump.
	places["the bodies the operator's log dumps"] = undumpBodies(log)

	events, err := env.Clientset.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(events.Items).NotTo(BeEmpty())
	places["Events"] = mustJSON(t, events)
	var instances wmcov1.WindowsInstanceList
	g.Expect(env.Client.List(ctx, &instances)).To(Succeed())
	for _, wi := range instances.Items {
		places["status of instance "+wi.Name] = mustJSON(t, wi.Status)
	}
	var configs wmcov1.WindowsNodeConfigList
	g.Expect(env.Client.List(ctx, &configs)).To(Succeed())
	for _, c := range configs.Items {
		places["status of WindowsNodeConfig "+c.Name] = mustJSON(t, c.Status)
	}
	nodes, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, n := range nodes.Items {
		// Labels, annotations and taints are the operator's to write.
		places["metadata of Node "+n.Name] = mustJSON(t, n.ObjectMeta)
	}
	logFiles := 0
	for _, h := range env.Hosts {
		for _, root := range []string{`C:\var\log`, `C:\k\log`} {
			walkDisk(t, h.Host.Disk(), root, func(path string, data []byte) {
				places[h.Name+":"+path] = data
				logFiles++
			})
		}
	}
	for _, h := range env.Hosts {
		g.Expect(places).To(HaveKeyWithValue(h.Name+":"+wicdapi.AgentLogPath, ContainSubstring("apply --plan")),
			"the agent on %s logged its applies", h.Name)
	}

	hits := 0
	for what, values := range secrets {
		for place, data := range places {
			for _, v := range values {
				if bytes.Contains(data, []byte(v)) {
					hits++
					t.Errorf("%s found in %s", what, place)
					break
				}
			}
		}
	}
	t.Logf("scanned %d places (operator log %d bytes, %d Events, %d host log files): %d hits", len(places), len(log), len(events.Items), logFiles, hits)
}

type tokenSet struct {
	mu  sync.Mutex
	set map[string]bool
}

func (s *tokenSet) add(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set[tok] = true
}

func (s *tokenSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.set))
	for tok := range s.set {
		out = append(out, tok)
	}
	return out
}

// watchBootstrapTokens collects the token of every bootstrap token Secret
// the operator writes in its namespace until ctx ends.
func watchBootstrapTokens(ctx context.Context, t *testing.T, env *localenv.Env) *tokenSet {
	t.Helper()
	s := &tokenSet{set: map[string]bool{}}
	lw := toolscache.NewFilteredListWatchFromClient(env.Clientset.CoreV1().RESTClient(), "secrets", env.Namespace,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(bootstrap.SecretType)).String()
		})
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, toolscache.Indexers{})
	record := func(o any) {
		if sec, ok := o.(*corev1.Secret); ok && len(sec.Data["token"]) > 0 {
			s.add(string(sec.Data["token"]))
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, o any) { record(o) },
	}); err != nil {
		t.Fatalf("watch bootstrap token Secrets: %v", err)
	}
	go inf.RunWithContext(ctx)
	return s
}

// keyFragments are the base64 lines of a PEM private key: any one of them
// in a log would leak part of the key.
func keyFragments(keyPEM []byte) []string {
	var out []string
	for _, line := range strings.Split(string(keyPEM), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

// kubeconfigCredentials are the client key, certificate and token of
// every user in the kubeconfig, as they appear in the file and decoded.
func kubeconfigCredentials(t *testing.T, path string) []string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	var out []string
	for _, a := range kc.AuthInfos {
		if a.Token != "" {
			out = append(out, a.Token)
		}
		keys := [][]byte{a.ClientKeyData}
		if a.ClientKey != "" {
			data, err := os.ReadFile(a.ClientKey)
			if err != nil {
				t.Fatalf("read the client key of %s: %v", path, err)
			}
			keys = append(keys, data)
		}
		if a.TokenFile != "" {
			data, err := os.ReadFile(a.TokenFile)
			if err != nil {
				t.Fatalf("read the token of %s: %v", path, err)
			}
			out = append(out, strings.TrimSpace(string(data)))
		}
		for _, pemData := range keys {
			if len(pemData) > 0 {
				out = append(out, keyFragments(pemData)...)
				out = append(out, base64.StdEncoding.EncodeToString(pemData)[:64])
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no credentials to look for", path)
	}
	return out
}

func walkDisk(t *testing.T, d *winsim.Disk, dir string, fn func(path string, data []byte)) {
	t.Helper()
	infos, err := d.List(dir)
	if err != nil {
		return
	}
	for _, fi := range infos {
		p := dir + `\` + fi.Name()
		if fi.IsDir() {
			walkDisk(t, d, p, fn)
			continue
		}
		data, err := d.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		fn(p, data)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// undumpBodies returns the bytes of every hex dump (as encoding/hex.Dump
// writes them) in the body field of a JSON log line, one body per line.
func undumpBodies(log []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(log, []byte("\n")) {
		var entry struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(line, &entry) != nil || entry.Body == "" {
			continue
		}
		for _, d := range strings.Split(entry.Body, "\n") {
			// "00000000  6b 38 73 00 0a 0a 0a 02  76 31 ...  |k8s.....|"
			if len(d) < 10 || strings.Trim(d[:8], "0123456789abcdef") != "" {
				continue
			}
			hexPart, _, _ := strings.Cut(d[10:], "  |")
			b, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
			if err == nil {
				out.Write(b)
			}
		}
		out.WriteByte('\n')
	}
	return out.Bytes()
}
