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
	// A write request of sftpMaxData with a handle of 4 bytes: 4 SSH
	// packets.
	bigData := bytes.Repeat([]byte{'D'}, sftpMaxData)
	bigHeader := append(sftpPacket(make([]byte, 25+sftpMaxData)), bytes.Repeat([]byte{'H'}, 25)...)
	c, h := sshPacketData, len(bigHeader)
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
		{"a large packet: its first SSH packet, then the rest of the data as written", [][]byte{bigHeader, bigData},
			[][]byte{append(bytes.Clone(bigHeader), bigData[:c-h]...), bigData[c-h:]}},
		{"a large packet in one write passes as it is", [][]byte{append(bytes.Clone(bigHeader), bigData...)},
			[][]byte{append(bytes.Clone(bigHeader), bigData...)}},
		{"a large packet's data in pieces: whole SSH packets only, then the end", [][]byte{bigHeader, bigData[:100], bigData[100 : 2*c], bigData[2*c:]},
			[][]byte{append(bytes.Clone(bigHeader), bigData[:c-h]...), bigData[c-h : 2*c-h], bigData[2*c-h : 3*c-h], bigData[3*c-h:]}},
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

// FuzzPacketWriter writes a stream of SFTP packets, of up to about 10
// SSH packets each, in pieces cut where the input says: the channel gets
// the stream whole, no write spans two packets, a packet of up to one SSH
// packet goes in one write, every other write but a packet's last is
// whole SSH packets, and the writer holds less than one SSH packet.
func FuzzPacketWriter(f *testing.F) {
	f.Add([]byte{3, 0, 5, 1, 2}, []byte{1, 7, 2})
	f.Add([]byte{0, 0, 200}, []byte{0, 255})
	f.Add([]byte{255, 30, 201}, []byte{3, 250, 90, 1})
	f.Fuzz(func(t *testing.T, sizes, cuts []byte) {
		var stream []byte
		var packets []int // each packet's length with its own
		for _, s := range sizes[:min(len(sizes), 32)] {
			body := int(s) * int(s) * 5 // up to 325,125 bytes
			p := append(sftpPacket(make([]byte, body)), bytes.Repeat([]byte{s}, body)...)
			packets = append(packets, len(p))
			stream = append(stream, p...)
		}
		var rec recordWrites
		pw := &packetWriter{w: &rec}
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				c := int(cuts[i%len(cuts)])
				n = min(n, c*c*4+1)
			}
			if _, err := pw.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			if len(pw.buf) >= sshPacketData {
				t.Fatalf("the writer holds %d bytes", len(pw.buf))
			}
			rest = rest[n:]
		}
		if got := bytes.Join(rec.writes, nil); !bytes.Equal(got, stream) {
			t.Fatalf("the channel got %d bytes, not the stream of %d", len(got), len(stream))
		}
		w := 0
		for i, size := range packets {
			var sizes []int
			for left := size; left > 0; w++ {
				if w == len(rec.writes) || len(rec.writes[w]) > left {
					t.Fatalf("packet %d (%d bytes): write %d spans its end", i, size, w)
				}
				sizes = append(sizes, len(rec.writes[w]))
				left -= len(rec.writes[w])
			}
			if size <= sshPacketData && len(sizes) != 1 {
				t.Fatalf("packet %d (%d bytes) went in %d writes %v", i, size, len(sizes), sizes)
			}
			for _, s := range sizes[:len(sizes)-1] {
				if s%sshPacketData != 0 {
					t.Fatalf("packet %d (%d bytes): writes %v, not whole SSH packets before the last", i, size, sizes)
				}
			}
		}
	})
}
