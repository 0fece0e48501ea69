/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package bounded quotes untrusted input for messages (conditions, Events,
// errors) without letting the input's size decide the message's size.
package bounded

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of input Quote keeps: a message names the
// value without repeating a whole ConfigMap or file.
const MaxQuoted = 64

// Quote quotes s as strconv.Quote does, cut to MaxQuoted bytes at a rune
// boundary and followed by its length when cut. The result is at most
// 4*MaxQuoted+30 bytes whatever s holds (each byte quotes to at most 4).
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	cut := MaxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}
