package localcluster

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// kubeletProxy is the API server's egress proxy towards kubelets
// (Options.KubeletProxy): an HTTP CONNECT proxy on a Unix socket that
// connects every tunnel to the requested port on 127.0.0.1, whatever
// address the Node reports. Nothing but loopback is ever dialled.
type kubeletProxy struct {
	ln         net.Listener
	configPath string
	wg         sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// egressConfig is kube-apiserver's EgressSelectorConfiguration: the
// "cluster" egress (kubelets, and services the API server dials) goes
// through the proxy.
const egressConfig = `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`

func startKubeletProxy(dir string) (*kubeletProxy, error) {
	sock := filepath.Join(dir, "kubelet-egress.sock")
	if len(sock) > 100 { // sun_path holds 108 bytes
		d, err := os.MkdirTemp("", "wmco-egress-")
		if err != nil {
			return nil, err
		}
		sock = filepath.Join(d, "egress.sock")
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("kubelet egress proxy: %w", err)
	}
	kp := &kubeletProxy{ln: ln, configPath: filepath.Join(dir, "egress-selector.yaml"), conns: map[net.Conn]struct{}{}}
	if err := os.WriteFile(kp.configPath, fmt.Appendf(nil, egressConfig, sock), 0o600); err != nil {
		_ = ln.Close()
		return nil, err
	}
	kp.wg.Go(kp.serve)
	return kp, nil
}

func (kp *kubeletProxy) serve() {
	for {
		c, err := kp.ln.Accept()
		if err != nil {
			return
		}
		kp.wg.Go(func() { kp.tunnel(c) })
	}
}

// track remembers an open connection so that close can end it; it reports
// false once the proxy is closed.
func (kp *kubeletProxy) track(c net.Conn) bool {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if kp.conns == nil {
		return false
	}
	kp.conns[c] = struct{}{}
	return true
}

func (kp *kubeletProxy) untrack(c net.Conn) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	delete(kp.conns, c)
}

// loopbackTarget is where a CONNECT to hostPort goes: the same port on
// 127.0.0.1, or the loopback address itself when one was asked for.
func loopbackTarget(hostPort string) (string, error) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsLoopback() {
		return hostPort, nil
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

func (kp *kubeletProxy) tunnel(c net.Conn) {
	defer func() { _ = c.Close() }()
	if !kp.track(c) {
		return
	}
	defer kp.untrack(c)
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	target, err := loopbackTarget(req.Host)
	if err != nil {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\n\r\n%v", err)
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v", err)
		return
	}
	defer func() { _ = up.Close() }()
	if !kp.track(up) {
		return
	}
	defer kp.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}

// close stops the proxy and ends its tunnels.
func (kp *kubeletProxy) close() {
	_ = kp.ln.Close()
	kp.mu.Lock()
	for c := range kp.conns {
		_ = c.Close()
	}
	kp.conns = nil
	kp.mu.Unlock()
	kp.wg.Wait()
}
