/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
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
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("{}"))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
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
