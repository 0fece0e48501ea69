package remote_test

import (
	"bytes"
	"testing"

	"github.com/openwmco/wmco/test/winsim"
)

// BenchmarkUpload measures Upload (write, read-back verification, rename)
// of an 8 MiB file over loopback without shaping.
func BenchmarkUpload(b *testing.B) {
	f := newFixture(b, winsim.Options{})
	s := f.dial(b)
	data, sum := payload(8<<20, 42)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if err := s.Upload(b.Context(), `C:\k\bench.bin`, bytes.NewReader(data), int64(len(data)), sum); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(f.host.Stats().BytesReceived)/float64(b.N)/float64(len(data)), "wire-bytes/byte")
}

// BenchmarkRun measures one exec round trip on an open session.
func BenchmarkRun(b *testing.B) {
	f := newFixture(b, winsim.Options{})
	s := f.dial(b)
	for b.Loop() {
		if _, err := s.Run(b.Context(), []string{`C:\k\missing.exe`}); err != nil {
			b.Fatal(err)
		}
	}
}
