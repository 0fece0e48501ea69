package remote

import (
	"bytes"
	"encoding/binary"
	"testing"

	. "github.com/onsi/gomega"
)

// recordWrites keeps each Write's bytes.
type recordWrites struct{ writes [][]byte }

func (r *recordWrites) Write(p []byte) (int, error) {
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// sftpPacket is an SFTP packet: its length, then body.
func sftpPacket(body []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(len(body))) //nolint:gosec // test bodies are small
}

func TestPacketWriter(t *testing.T) {
	header := append(sftpPacket(make([]byte, 40+32000)), bytes.Repeat([]byte{'h'}, 40)...)
	data := bytes.Repeat([]byte{'d'}, 32000)
	small := append(sftpPacket([]byte("status")), "status"...)
	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte
	}{
		{"a header, then its data: one write", [][]byte{header, data}, [][]byte{append(bytes.Clone(header), data...)}},
		{"a whole packet passes as it is", [][]byte{small}, [][]byte{small}},
		{"two packets in one write: two writes", [][]byte{append(bytes.Clone(small), small...)}, [][]byte{small, small}},
		{"a packet in bytes", func() [][]byte {
			var w [][]byte
			for _, b := range small {
				w = append(w, []byte{b})
			}
			return w
		}(), [][]byte{small}},
		{"an empty packet", [][]byte{{0, 0, 0, 0}}, [][]byte{{0, 0, 0, 0}}},
		{"nothing whole yet", [][]byte{header}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var rec recordWrites
			pw := &packetWriter{w: &rec}
			for _, w := range tt.writes {
				n, err := pw.Write(w)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(n).To(Equal(len(w)))
			}
			g.Expect(rec.writes).To(Equal(tt.want))
		})
	}
}

// FuzzPacketWriter writes a stream of SFTP packets in pieces cut where
// the input says: the channel gets each packet whole, in one write.
func FuzzPacketWriter(f *testing.F) {
	f.Add([]byte{3, 0, 5, 1, 2}, []byte{1, 7, 2})
	f.Add([]byte{0, 0, 200}, []byte{0, 255})
	f.Fuzz(func(t *testing.T, sizes, cuts []byte) {
		var stream []byte
		var want [][]byte
		for _, s := range sizes[:min(len(sizes), 32)] {
			p := append(sftpPacket(make([]byte, int(s)*100)), bytes.Repeat([]byte{s}, int(s)*100)...)
			want = append(want, p)
			stream = append(stream, p...)
		}
		var rec recordWrites
		pw := &packetWriter{w: &rec}
		for i := 0; len(stream) > 0; i++ {
			n := len(stream)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])*50+1)
			}
			if _, err := pw.Write(stream[:n]); err != nil {
				t.Fatal(err)
			}
			stream = stream[n:]
		}
		if len(rec.writes) != len(want) {
			t.Fatalf("%d writes for %d packets", len(rec.writes), len(want))
		}
		for i := range want {
			if !bytes.Equal(rec.writes[i], want[i]) {
				t.Fatalf("write %d is not packet %d", i, i)
			}
		}
	})
}
