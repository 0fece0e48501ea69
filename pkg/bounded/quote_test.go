/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package bounded

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestQuote(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"short", "abc", `"abc"`},
		{"empty", "", `""`},
		{"exactly the bound", strings.Repeat("a", MaxQuoted), `"` + strings.Repeat("a", MaxQuoted) + `"`},
		{"cut", strings.Repeat("a", MaxQuoted+1), `"` + strings.Repeat("a", MaxQuoted) + `"... (65 bytes)`},
		{"cut before a split rune", strings.Repeat("a", MaxQuoted-1) + "é", `"` + strings.Repeat("a", MaxQuoted-1) + `"... (65 bytes)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			NewWithT(t).Expect(Quote(c.in)).To(Equal(c.want))
		})
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("plain")
	f.Add(strings.Repeat("\xb8", 1000))
	f.Fuzz(func(t *testing.T, s string) {
		if q := Quote(s); len(q) > 4*MaxQuoted+30 {
			t.Fatalf("quote of %d bytes is %d bytes", len(s), len(q))
		}
	})
}
