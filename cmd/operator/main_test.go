/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

// The operator loads every payload of --payload-dir and configures hosts
// with the newest the version-skew policy allows against the API server;
// with none, it names the API server's version and every payload.
func TestLoadCatalogBySkew(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	for _, kv := range []string{"v1.38.0", "v1.37.2", "v1.33.1"} {
		_, err := testpayload.Write(filepath.Join(dir, kv), testpayload.Options{Version: kv + "-test", KubernetesVersion: kv})
		g.Expect(err).NotTo(HaveOccurred())
	}
	c, err := payload.LoadCatalog(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.KubernetesVersions()).To(Equal([]string{"v1.38.0", "v1.37.2", "v1.33.1"}))
	for _, tc := range []struct {
		server, want string
	}{
		{"v1.38.2", "v1.38.0"},
		{"v1.37.2", "v1.37.2"}, // v1.38.0 would be newer than the API server
		{"v1.36.0+k3s1", "v1.33.1"},
		{"v1.39.0", "v1.38.0"},
	} {
		e, err := c.Select(tc.server)
		g.Expect(err).NotTo(HaveOccurred(), tc.server)
		g.Expect(e.Manifest.KubernetesVersion).To(Equal(tc.want), tc.server)
		g.Expect(e.Dir).To(Equal(filepath.Join(dir, tc.want)))
	}

	// None fits: named, with the API server's version and every payload.
	_, err = c.Select("v1.32.4")
	var se *payload.SkewError
	g.Expect(errors.As(err, &se)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("v1.32.4"), ContainSubstring("v1.38.0, v1.37.2, v1.33.1")))

	// A single payload in the directory itself is held to the same rule.
	single := t.TempDir()
	_, err = testpayload.Write(single, testpayload.Options{KubernetesVersion: "v1.38.0"})
	g.Expect(err).NotTo(HaveOccurred())
	c, err = payload.LoadCatalog(single)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.Select("v1.37.2")
	g.Expect(err).To(MatchError(ContainSubstring("v1.37.2")))
	e, err := c.Select("v1.38.0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.Dir).To(Equal(single))

	// A payload that does not verify is refused outright.
	_, err = testpayload.Write(filepath.Join(dir, "v1.36.1"), testpayload.Options{KubernetesVersion: "v1.36.1"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removeOneFile(filepath.Join(dir, "v1.36.1"))).To(Succeed())
	_, err = payload.LoadCatalog(dir)
	g.Expect(err).To(MatchError(ContainSubstring("v1.36.1")))
}

// removeOneFile deletes the payload's kubelet.exe.
func removeOneFile(dir string) error {
	return os.Remove(filepath.Join(dir, "kubelet.exe"))
}

// However verbose --zap-log-level asks for, client-go's body dumps (V(8)
// and beyond) stay off, and the levels below stay as asked.
func TestVerbosityIsCapped(t *testing.T) {
	for _, tc := range []struct {
		asked   zapcore.Level
		level   zapcore.Level
		enabled bool
	}{
		{asked: -10, level: -8, enabled: false},
		{asked: -10, level: -7, enabled: true},
		{asked: -10, level: zapcore.InfoLevel, enabled: true},
		{asked: zapcore.DebugLevel, level: -2, enabled: false},
		{asked: zapcore.DebugLevel, level: zapcore.DebugLevel, enabled: true},
		{asked: zapcore.ErrorLevel, level: zapcore.InfoLevel, enabled: false},
	} {
		got := cappedLevel{tc.asked}.Enabled(tc.level)
		if got != tc.enabled {
			t.Errorf("asked for %v: level %v enabled = %v, want %v", tc.asked, tc.level, got, tc.enabled)
		}
	}
}

// Profiles are served on loopback only: a profile is not authenticated.
func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"0", true},
		{"127.0.0.1:6060", true},
		{"127.8.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"[::]:6060", false},
		{"10.0.0.1:6060", false},
		{"example.com:6060", false},
		{"localhost.example.com:6060", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			g := NewWithT(t)
			err := checkLoopback(tc.addr)
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(HaveOccurred())
			}
		})
	}
}

// --kube-api-qps 0 leaves the limit to the API server; otherwise both
// flags land in the client config.
func TestApplyClientLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		qps       float64
		burst     int
		wantQPS   float32
		wantBurst int
		wantErr   bool
	}{
		{name: "defaults", qps: defaultKubeQPS, burst: defaultKubeBurst, wantQPS: defaultKubeQPS, wantBurst: defaultKubeBurst},
		{name: "no client limit", qps: 0, burst: 50, wantQPS: -1, wantBurst: 0},
		{name: "negative rate", qps: -1, burst: 10, wantErr: true},
		{name: "no burst", qps: 10, burst: 0, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			cfg := &rest.Config{QPS: -1}
			err := applyClientLimits(cfg, tc.qps, tc.burst)
			if tc.wantErr {
				g.Expect(err).To(HaveOccurred())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cfg.QPS).To(Equal(tc.wantQPS))
			g.Expect(cfg.Burst).To(Equal(tc.wantBurst))
		})
	}
}

// The cache's watches reach the API server over a connection of their
// own: clients made from one config share a connection, a watch client
// does not.
func TestWatchHTTPClientHasItsOwnConnection(t *testing.T) {
	g := NewWithT(t)
	srv, conns, caPEM := http2Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("{}"))
	}), nil)
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	get := func(c *http.Client) {
		resp, err := c.Get(srv.URL + "/version")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.ProtoMajor).To(Equal(2))
		_, _ = io.Copy(io.Discard, resp.Body)
		g.Expect(resp.Body.Close()).To(Succeed())
	}

	requests, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	others, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	get(requests)
	get(others)
	g.Expect(conns.Load()).To(Equal(int32(1)), "two clients of one config share a connection")

	watches, err := newWatchHTTPClient(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	get(watches)
	get(requests)
	g.Expect(conns.Load()).To(Equal(int32(2)), "the watch client opens a connection of its own")
}

// A burst of requests beyond the API server's streams per connection waits
// for a stream on the one connection (limitInFlight) instead of opening a
// connection, and a TLS handshake, per request that finds the streams
// taken, as Go's HTTP/2 client does without the limit.
func TestLimitInFlightKeepsOneConnection(t *testing.T) {
	const streams, burst, limit = 100, 150, 64
	var (
		inFlight, most atomic.Int32
		release        atomic.Pointer[chan struct{}] // answers wait for it to close
	)
	srv, conns, caPEM := http2Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m; m = most.Load() {
			if most.CompareAndSwap(m, n) {
				break
			}
		}
		<-*release.Load()
		inFlight.Add(-1)
		_, _ = w.Write([]byte("{}"))
	}), &http.HTTP2Config{MaxConcurrentStreams: streams}) // as kube-apiserver's default

	run := func(g Gomega, cfg *rest.Config, wantInFlight int32) {
		// A Dial of its own: a transport of its own, unshared with the
		// other run's.
		cfg.Dial = (&net.Dialer{}).DialContext
		c, err := rest.HTTPClientFor(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		errs := make(chan error, burst)
		get := func() {
			resp, err := c.Get(srv.URL + "/version")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				err = resp.Body.Close()
			}
			errs <- err
		}
		// The connection is open when the burst comes, as the operator's
		// is: it has been making requests.
		conns.Store(0)
		open := make(chan struct{})
		close(open)
		release.Store(&open)
		get()
		g.Expect(<-errs).To(Succeed())
		g.Expect(conns.Load()).To(Equal(int32(1)))
		held := make(chan struct{})
		release.Store(&held)
		most.Store(0)
		for range burst {
			go get()
		}
		g.Eventually(inFlight.Load).WithTimeout(30 * time.Second).Should(Equal(wantInFlight))
		close(held)
		for range burst {
			g.Expect(<-errs).To(Succeed())
		}
	}

	g := NewWithT(t)
	// Without the limit, every request past the 100th dials.
	run(g, &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}, burst)
	g.Expect(conns.Load()).To(BeNumerically(">", 1), "the control: without the limit the burst opens more connections")

	limited := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	limitInFlight(limited, limit)
	run(g, limited, limit)
	g.Expect(most.Load()).To(Equal(int32(limit)))
	g.Expect(conns.Load()).To(Equal(int32(1)), "with the limit the burst shares one connection")
}

// A watch holds its stream for as long as it runs, not a slot of
// limitInFlight: with one slot, a request goes out beside an open watch;
// a request's slot comes back when its body is closed.
func TestLimitInFlightLetsWatchesPass(t *testing.T) {
	g := NewWithT(t)
	stop := make(chan struct{})
	srv, _, caPEM := http2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-stop
			return
		}
		_, _ = w.Write([]byte("{}"))
	}), nil)
	defer close(stop)
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	limitInFlight(cfg, 1)
	c, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())

	get := func(path string) *http.Response {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := c.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		return resp
	}
	watch := get("/api/v1/nodes?watch=true")
	defer func() { _ = watch.Body.Close() }() // the server holds it open
	for range 3 {
		resp := get("/api/v1/nodes/a")
		_, _ = io.Copy(io.Discard, resp.Body)
		g.Expect(resp.Body.Close()).To(Succeed())
	}
}

// http2Server starts a TLS server of h that speaks HTTP/2 (with h2's
// settings, when given) and counts the connections opened to it; it
// returns the PEM certificate that trusts it. Closed at the test's end.
func http2Server(t *testing.T, h http.Handler, h2 *http.HTTP2Config) (*httptest.Server, *atomic.Int32, []byte) {
	conns := &atomic.Int32{}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.Config.HTTP2 = h2
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, conns, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
