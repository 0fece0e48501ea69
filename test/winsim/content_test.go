package winsim

import (
	"bytes"
	"encoding/binary"
	"testing"

	. "github.com/onsi/gomega"
)

// model is the plain slice content replaced: the behaviour content must
// keep (zeros where nothing was written, truncation, reads at the end).
type model []byte

func (m *model) writeAt(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(*m)) {
		*m = append(*m, make([]byte, end-int64(len(*m)))...)
	}
	copy((*m)[off:], p)
}

func (m *model) truncate(size int64) {
	if size < int64(len(*m)) {
		*m = (*m)[:size]
	}
}

func TestContent(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*fileChunk/16+5)
	tests := []struct {
		name string
		ops  func(c *content, m *model)
	}{
		{"empty", func(*content, *model) {}},
		{"small file", func(c *content, m *model) {
			c.writeAt([]byte("hello"), 0)
			m.writeAt([]byte("hello"), 0)
		}},
		{"sequential 32 KiB writes across chunks", func(c *content, m *model) {
			for off := 0; off < len(big); off += 32 << 10 {
				p := big[off:min(off+32<<10, len(big))]
				c.writeAt(p, int64(off))
				m.writeAt(p, int64(off))
			}
		}},
		{"out of order writes", func(c *content, m *model) {
			for _, off := range []int{2 * fileChunk, 0, fileChunk - 3, 5} {
				c.writeAt(big[:100], int64(off))
				m.writeAt(big[:100], int64(off))
			}
		}},
		{"a write past the end leaves zeros", func(c *content, m *model) {
			c.writeAt([]byte("x"), fileChunk+smallChunk+7)
			m.writeAt([]byte("x"), fileChunk+smallChunk+7)
		}},
		{"truncate then grow reads zeros, not old bytes", func(c *content, m *model) {
			c.writeAt(big, 0)
			m.writeAt(big, 0)
			for _, size := range []int64{fileChunk + 10, 10, 0} {
				c.truncate(size)
				m.truncate(size)
				c.writeAt([]byte("y"), size+fileChunk/2)
				m.writeAt([]byte("y"), size+fileChunk/2)
			}
		}},
		{"truncate at a chunk boundary", func(c *content, m *model) {
			c.writeAt(big, 0)
			m.writeAt(big, 0)
			c.truncate(2 * fileChunk)
			m.truncate(2 * fileChunk)
			c.writeAt([]byte("z"), 3*fileChunk)
			m.writeAt([]byte("z"), 3*fileChunk)
		}},
	}
	for _, tt := range tests {
		for _, reused := range []bool{false, true} {
			name := tt.name
			if reused {
				name += ", buffers reused from other files"
			}
			t.Run(name, func(t *testing.T) {
				if reused {
					soilPool()
				}
				checkContent(t, tt.ops)
			})
		}
	}
}

// soilPool fills the pool of chunk buffers with buffers holding bytes of
// "other files" (0xa5), as a busy simulated disk leaves it: a file must
// never read them where it was not written.
func soilPool() {
	for {
		select {
		case <-buffers.free:
			continue
		default:
		}
		break
	}
	for range cap(buffers.free) {
		buffers.put(bytes.Repeat([]byte{0xa5}, fileChunk))
	}
}

// checkContent runs ops on content and on the plain slice and compares
// them, a copy of the content, and a read at the end.
func checkContent(t *testing.T, ops func(c *content, m *model)) {
	t.Helper()
	g := NewWithT(t)
	var c content
	var m model
	ops(&c, &m)
	g.Expect(c.len()).To(Equal(int64(len(m))))
	g.Expect(bytes.Equal(c.bytes(), m)).To(BeTrue(), "content differs from the plain slice")
	var cp content
	cp.copyFrom(&c)
	g.Expect(bytes.Equal(cp.bytes(), m)).To(BeTrue(), "a copy differs from the plain slice")
	if len(m) > 0 {
		cp.writeAt([]byte{^m[0]}, 0)
		g.Expect(bytes.Equal(c.bytes(), m)).To(BeTrue(), "writing the copy changed the original")
	}
	for i, ch := range c.chunks {
		if i < len(c.chunks)-1 {
			g.Expect(ch.data).To(HaveLen(fileChunk), "chunk %d of %d", i, len(c.chunks))
		}
	}
	if len(m) > 3 {
		p := make([]byte, 10)
		n := c.readAt(p, int64(len(m)-3))
		g.Expect(n).To(Equal(3), "a read at the end stops there")
		g.Expect(p[:n]).To(Equal([]byte(m[len(m)-3:])))
	}
}

// FuzzContent runs a program of writes and truncations, decoded from the
// input, on content and on the plain slice, and compares them.
func FuzzContent(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 5, 'a', 'b', 'c', 'd', 'e', 1, 0, 0, 0, 2})
	f.Add([]byte{0, 0, 16, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 2, 'y', 'z'})
	f.Fuzz(func(t *testing.T, prog []byte) {
		var c content
		var m model
		for len(prog) >= 4 {
			op := prog[0]
			// offsets up to 4 MiB, in 64-byte steps: several chunks
			off := int64(binary.BigEndian.Uint16(prog[1:3])) * 64
			prog = prog[3:]
			switch op % 2 {
			case 0:
				n := min(int(prog[0]), len(prog)-1)
				p := prog[1 : 1+n]
				prog = prog[1+n:]
				c.writeAt(p, off)
				m.writeAt(p, off)
			case 1:
				c.truncate(off)
				m.truncate(off)
			}
		}
		if c.len() != int64(len(m)) || !bytes.Equal(c.bytes(), m) {
			t.Fatalf("content (%d bytes) differs from the plain slice (%d bytes)", c.len(), len(m))
		}
		var cp content
		cp.copyFrom(&c)
		if cp.len() != int64(len(m)) || !bytes.Equal(cp.bytes(), m) {
			t.Fatalf("a copy (%d bytes) differs from the plain slice (%d bytes)", cp.len(), len(m))
		}
	})
}

func TestContentSharesFullChunks(t *testing.T) {
	g := NewWithT(t)
	payload := bytes.Repeat([]byte("payload!"), (2*fileChunk+100)/8)
	var a, b content
	for off := 0; off < len(payload); off += 32 << 10 {
		p := payload[off:min(off+32<<10, len(payload))]
		a.writeAt(p, int64(off))
		b.writeAt(p, int64(off))
	}
	g.Expect(a.bytes()).To(Equal(payload))
	for i := range 2 {
		g.Expect(a.chunks[i].shared).NotTo(BeNil(), "full chunk %d is shared", i)
		g.Expect(b.chunks[i].shared).To(BeIdenticalTo(a.chunks[i].shared), "the same bytes are held once")
	}
	g.Expect(a.chunks[2].shared).To(BeNil(), "the partial last chunk stays the file's own")

	// A write into a shared chunk changes only that file.
	a.writeAt([]byte("CHANGED"), fileChunk+5)
	g.Expect(b.bytes()).To(Equal(payload), "the other file keeps its bytes")
	want := bytes.Clone(payload)
	copy(want[fileChunk+5:], "CHANGED")
	g.Expect(a.bytes()).To(Equal(want))

	// Truncating into a shared chunk leaves the other file whole, and
	// growing again reads zeros.
	b.truncate(fileChunk / 2)
	b.writeAt([]byte("z"), fileChunk-1)
	g.Expect(a.bytes()).To(Equal(want))
	grown := make([]byte, fileChunk)
	copy(grown, payload[:fileChunk/2])
	grown[fileChunk-1] = 'z'
	g.Expect(b.bytes()).To(Equal(grown))

	// A chunk written out of order is shared once all of it was written.
	var c content
	half := fileChunk / 2
	c.writeAt(payload[half:fileChunk], int64(half))
	g.Expect(c.chunks[0].shared).To(BeNil(), "half written")
	c.writeAt(payload[:half], 0)
	g.Expect(c.chunks[0].shared).To(BeIdenticalTo(a.chunks[0].shared), "the first chunk of the payload, which a still has")
}

// Full chunks that differ only between the bytes chunkKey samples have
// the same key and are compared in full: each file keeps its own bytes,
// and a third with the first's bytes shares the first's chunk.
func TestContentChunksOfOneKeyAreComparedInFull(t *testing.T) {
	g := NewWithT(t)
	first := make([]byte, fileChunk)
	for i := range first {
		first[i] = byte(i * 7)
	}
	second := bytes.Clone(first)
	second[chunkSample+1] ^= 0xff // between the first two samples
	g.Expect(chunkKey(second)).To(Equal(chunkKey(first)), "the change is not sampled")

	var a, b, c content
	a.writeAt(first, 0)
	b.writeAt(second, 0)
	c.writeAt(first, 0)
	g.Expect(a.bytes()).To(Equal(first))
	g.Expect(b.bytes()).To(Equal(second))
	g.Expect(b.chunks[0].shared).NotTo(BeIdenticalTo(a.chunks[0].shared), "other bytes, another chunk")
	g.Expect(c.chunks[0].shared).To(BeIdenticalTo(a.chunks[0].shared), "the same bytes are held once")
}
