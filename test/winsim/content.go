package winsim

import (
	"bytes"
	"hash/maphash"
	"runtime"
	"sync"
	"weak"
)

// A file's content is kept in chunks of fileChunk bytes, so that growing a
// file never copies what was written before, and full chunks with the same
// bytes are shared by every file holding them, on every simulated host of
// the process. Both matter for a many-host benchmark on a small machine:
//   - a simulated host receiving a 12 MiB file in 32 KiB SFTP writes used
//     to re-allocate and copy its whole content each time the slice
//     outgrew its capacity;
//   - N hosts receiving the same payload held N copies of it, and memory
//     the process touches for the first time is expensive (in the
//     microVM this project is developed in, first-touching 1.5 GiB took
//     over a minute under load against 0.7 s for copying as much into
//     memory already in use).
//
// A chunk is shared once it is full and as many bytes were written into
// it as it holds (a write into a shared chunk copies it first), through a
// table of weak pointers, so chunks no file holds any more are collected.
const fileChunk = 1 << 20

// smallChunk is the length up to which a chunk grows as a slice does
// (doubling), so that small files (configuration, logs) take what they
// need; a chunk that outgrows it gets a whole fileChunk buffer at once.
const smallChunk = 64 << 10

// content is a file's bytes. Every chunk but the last is fileChunk long;
// the last holds the rest. Bytes of a chunk between its length and its
// capacity are undefined (a reused buffer holds another file's bytes):
// grow zeroes those it brings into the file, unless the write that grows
// it covers them at once, so growing a file reads zeros there, as on
// NTFS.
type content struct {
	chunks []piece
	size   int64
}

// piece is one fileChunk of a file.
type piece struct {
	data []byte
	// shared holds data while it is shared (read-only); nil while the
	// file owns data.
	shared *sharedChunk
	// written counts the bytes written into data since the file owns it;
	// a full chunk is shared once written reaches fileChunk.
	written int
}

// sharedChunk is a full chunk's bytes, shared read-only by every file
// whose chunk has them.
type sharedChunk struct{ data []byte }

// len is the file's size.
func (c *content) len() int64 { return c.size }

// grow extends the content to end bytes. The bytes it adds read zero,
// except those from written on, which the caller writes at once (pass
// end for all zeros): so an upload's writes, each past the end,
// zero no memory they then overwrite.
func (c *content) grow(end, written int64) {
	for c.size < end {
		i := c.size / fileChunk
		if int(i) == len(c.chunks) {
			c.chunks = append(c.chunks, piece{})
		}
		ch := &c.chunks[i] // never shared: shared chunks are full
		base := i * fileChunk
		old := int64(len(ch.data))
		want := min(end-base, fileChunk)
		if int64(cap(ch.data)) < want {
			var grown []byte
			if want <= smallChunk {
				grown = make([]byte, old, min(max(want, 2*int64(cap(ch.data)), 512), smallChunk))
			} else {
				grown = buffers.get()[:old]
			}
			copy(grown, ch.data)
			ch.data = grown
		}
		ch.data = ch.data[:want]
		if z := min(want, max(written-base, old)); z > old {
			clear(ch.data[old:z])
		}
		c.size = base + want
	}
}

// own makes the file own chunk i's bytes, copying them out of a shared
// chunk.
func (c *content) own(i int64) *piece {
	ch := &c.chunks[i]
	if ch.shared != nil {
		b := buffers.get()
		copy(b, ch.data)
		ch.data, ch.shared, ch.written = b, nil, 0
	}
	return ch
}

// writeAt writes p at off, growing the content as needed.
func (c *content) writeAt(p []byte, off int64) {
	if end := off + int64(len(p)); end > c.size {
		c.grow(end, off)
	}
	for len(p) > 0 {
		i := off / fileChunk
		ch := c.own(i)
		k := copy(ch.data[off%fileChunk:], p)
		ch.written += k
		if len(ch.data) == fileChunk && ch.written >= fileChunk {
			ch.data, ch.shared = shareChunk(ch.data)
		}
		p = p[k:]
		off += int64(k)
	}
}

// readAt copies the content from off into p and returns how many bytes it
// copied: fewer than len(p) only at the end of the file.
func (c *content) readAt(p []byte, off int64) int {
	n := 0
	for n < len(p) && off < c.size {
		ch := c.chunks[off/fileChunk]
		k := copy(p[n:], ch.data[off%fileChunk:])
		n += k
		off += int64(k)
	}
	return n
}

// view returns the bytes from off to the end of off's chunk when that
// chunk is shared, and so never written again; nil when the file owns the
// chunk (its bytes may change: copy them with readAt). off must be within
// the content.
func (c *content) view(off int64) []byte {
	ch := c.chunks[off/fileChunk]
	if ch.shared == nil {
		return nil
	}
	return ch.data[off%fileChunk:]
}

// copyFrom replaces the (empty) content with src's: chunks src shares
// are shared, the others copied.
func (c *content) copyFrom(src *content) {
	for i := range src.chunks {
		ch := src.chunks[i]
		if ch.shared != nil {
			c.chunks = append(c.chunks, piece{data: ch.data, shared: ch.shared, written: ch.written})
			c.size += int64(len(ch.data))
			continue
		}
		c.writeAt(ch.data, int64(i)*fileChunk)
	}
}

// truncate shrinks the content to size (never grows it).
func (c *content) truncate(size int64) {
	if size >= c.size {
		return
	}
	keep := (size + fileChunk - 1) / fileChunk // chunks that keep bytes
	for i := keep; i < int64(len(c.chunks)); i++ {
		c.chunks[i].release()
	}
	clear(c.chunks[keep:])
	c.chunks = c.chunks[:keep]
	if keep > 0 {
		if tail := size - (keep-1)*fileChunk; tail < fileChunk {
			ch := c.own(keep - 1)
			ch.data = ch.data[:tail]
		}
	}
	c.size = size
}

// release hands a whole buffer the file owns back for reuse.
func (ch *piece) release() {
	if ch.shared == nil && cap(ch.data) == fileChunk {
		buffers.put(ch.data)
	}
}

// bytes returns a copy of the whole content.
func (c *content) bytes() []byte {
	out := make([]byte, c.size)
	c.readAt(out, 0)
	return out
}

// chunkTable finds the shared chunk holding given bytes.
var chunkTable = struct {
	sync.Mutex
	seed   maphash.Seed
	byHash map[uint64][]weak.Pointer[sharedChunk]
}{seed: maphash.MakeSeed(), byHash: map[uint64][]weak.Pointer[sharedChunk]{}}

// chunkSamples runs of chunkSample bytes, evenly spaced, key a full
// chunk in the table (chunkKey).
const (
	chunkSamples = 32
	chunkSample  = 128
)

// chunkKey is the table's key of a full chunk: a hash of chunkSamples
// runs of its bytes (4 KiB of 1 MiB), not of all of them. Chunks of one
// key are compared in full before one is shared, so a key that different
// chunks share costs a comparison, never a wrong share; hashing every
// byte of every uploaded chunk was 6 % of the simulated hosts' CPU in a
// 50-host join.
func chunkKey(b []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(chunkTable.seed)
	step := len(b) / chunkSamples
	for i := range chunkSamples {
		_, _ = h.Write(b[i*step : i*step+chunkSample])
	}
	return h.Sum64()
}

// shareChunk returns the shared chunk with b's bytes, b itself becoming
// one when there is none (b must not be written afterwards).
func shareChunk(b []byte) ([]byte, *sharedChunk) {
	sum := chunkKey(b)
	chunkTable.Lock()
	defer chunkTable.Unlock()
	for _, wp := range chunkTable.byHash[sum] {
		if s := wp.Value(); s != nil && bytes.Equal(s.data, b) {
			buffers.put(b)
			return s.data, s
		}
	}
	s := &sharedChunk{data: b}
	chunkTable.byHash[sum] = append(chunkTable.byHash[sum], weak.Make(s))
	runtime.AddCleanup(s, forgetChunks, sum)
	return s.data, s
}

// forgetChunks drops the table's entries for collected chunks of a hash.
func forgetChunks(sum uint64) {
	chunkTable.Lock()
	defer chunkTable.Unlock()
	live := chunkTable.byHash[sum][:0]
	for _, wp := range chunkTable.byHash[sum] {
		if wp.Value() != nil {
			live = append(live, wp)
		}
	}
	if len(live) == 0 {
		delete(chunkTable.byHash, sum)
		return
	}
	chunkTable.byHash[sum] = live
}

// buffers keeps whole chunk buffers for reuse, so that a host receiving a
// file it shares with others writes into memory already in use.
var buffers = bufferPool{free: make(chan []byte, 64)}

type bufferPool struct{ free chan []byte }

// get returns a buffer of fileChunk bytes; a reused one holds the bytes
// it last held (content.grow zeroes what a file reads without writing).
func (p bufferPool) get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, fileChunk)
	}
}

// put keeps b for reuse, or lets it go when enough are kept.
func (p bufferPool) put(b []byte) {
	select {
	case p.free <- b[:fileChunk]:
	default:
	}
}
