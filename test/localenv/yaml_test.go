package localenv

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestYAMLDocuments(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{name: "empty", in: "", want: nil},
		{name: "one", in: "a: 1\n", want: []string{"a: 1\n"}},
		{name: "two", in: "a: 1\n---\nb: 2\n", want: []string{"a: 1\n", "b: 2\n"}},
		// As the YAML reader returns them: a leading separator stays with
		// the first document, a separator after an empty one with the
		// next (both decode as if it were not there).
		{name: "leading separator", in: "---\na: 1\n---\nb: 2\n", want: []string{"---\na: 1\n", "b: 2\n"}},
		{name: "an empty document in between", in: "a: 1\n---\n---\nb: 2\n", want: []string{"a: 1\n", "---\nb: 2\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			docs, err := YAMLDocuments([]byte(tc.in))
			g.Expect(err).NotTo(HaveOccurred())
			var got []string
			for _, d := range docs {
				got = append(got, string(d))
			}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
