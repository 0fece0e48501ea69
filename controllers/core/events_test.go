package core

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestTruncate(t *testing.T) {
	const n = 16
	cases := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"short", "short", "short"},
		{"exactly n", strings.Repeat("a", n), strings.Repeat("a", n)},
		{"one over", strings.Repeat("a", n+1), strings.Repeat("a", n-3) + "..."},
		// "é" is two bytes at offsets 12-13: the cut at 13 would split it.
		{"two-byte rune across the cut", strings.Repeat("a", 12) + "é" + "zzzz", strings.Repeat("a", 12) + "..."},
		// "€" is three bytes at offsets 11-13.
		{"three-byte rune across the cut", strings.Repeat("a", 11) + "€" + "zzzz", strings.Repeat("a", 11) + "..."},
		// A rune ending right at the cut is kept whole.
		{"rune ending at the cut", strings.Repeat("a", 11) + "é" + "zzzz", strings.Repeat("a", 11) + "é..."},
		{"exactly n multi-byte", strings.Repeat("é", n/2), strings.Repeat("é", n/2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			NewWithT(t).Expect(Truncate(c.in, n)).To(Equal(c.want))
		})
	}
}

// Every position of a four-byte rune against the cut, and invalid UTF-8:
// the result fits, is a prefix plus "...", and splits no rune.
func TestTruncateNeverSplitsARune(t *testing.T) {
	g := NewWithT(t)
	for n := 4; n <= 24; n++ {
		for pad := range 8 {
			s := strings.Repeat("a", pad) + strings.Repeat("😀", 8)
			got := Truncate(s, n)
			g.Expect(len(got)).To(BeNumerically("<=", n), "n=%d pad=%d", n, pad)
			g.Expect(utf8.ValidString(got)).To(BeTrue(), "n=%d pad=%d: %q", n, pad, got)
			g.Expect(strings.HasPrefix(s, strings.TrimSuffix(got, "..."))).To(BeTrue())
		}
	}
	got := Truncate(strings.Repeat("\xff", 40), 16)
	g.Expect(len(got)).To(BeNumerically("<=", 16))
}

// recordingRecorder keeps the notes it is given, formatted.
type recordingRecorder struct{ notes []string }

func (r *recordingRecorder) Eventf(_, _ runtime.Object, _, _, _, note string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(note, args...))
}

func TestRecorderTruncatesNotes(t *testing.T) {
	g := NewWithT(t)
	inner := &recordingRecorder{}
	r := Recorder(inner)
	g.Expect(Recorder(r)).To(BeIdenticalTo(r), "wrapping twice is wrapping once")
	g.Expect(Recorder(nil)).To(BeNil())

	long := strings.Repeat("é", 32<<10) // 64 KiB, two bytes a rune
	r.Eventf(nil, nil, "Warning", "InvalidEntry", "ParseEntry", "Entry %q is invalid and ignored: %s", "10.0.0.1", long)
	// Arguments are formatted once: a % in them stays as it is.
	r.Eventf(nil, nil, "Normal", "Reason", "Action", "value %s", "100%d")
	r.Eventf(nil, nil, "Normal", "Reason", "Action", "no arguments")

	g.Expect(inner.notes).To(HaveLen(3))
	note := inner.notes[0]
	g.Expect(len(note)).To(BeNumerically("<=", MaxEventNoteBytes))
	g.Expect(len(note)).To(BeNumerically(">=", MaxEventNoteBytes-4))
	g.Expect(utf8.ValidString(note)).To(BeTrue())
	g.Expect(note).To(HavePrefix(`Entry "10.0.0.1" is invalid and ignored: éé`))
	g.Expect(note).To(HaveSuffix("é..."))
	g.Expect(inner.notes[1:]).To(Equal([]string{"value 100%d", "no arguments"}))
}
