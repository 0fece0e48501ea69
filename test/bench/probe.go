package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"slices"
	"time"
)

// probeBytes is how much data each step of the speed probe goes through.
const probeBytes = 256 << 20

// probeRuns is how many times the probe runs; it reports the median.
const probeRuns = 3

// probeSpeed times a fixed piece of work on one goroutine: SHA-256,
// AES-GCM sealing and a copy of probeBytes each, the work a join spends
// most of its CPU on per byte (the agent's hash of the uploads, the SSH
// stream's encryption, its buffers). The same code's figures move with
// this machine's speed from hour to hour (a 50-host join's CPU time by
// a fifth and more); the probe, taken while nothing else of the
// benchmark runs, says how fast the machine was then. It reports the
// median of probeRuns.
func probeSpeed() time.Duration {
	src := make([]byte, probeBytes)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]byte, probeBytes+16)
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		panic(err) // a 16-byte key is valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, aead.NonceSize())
	runs := make([]time.Duration, probeRuns)
	for i := range runs {
		t := time.Now()
		sum := sha256.Sum256(src)
		dst = aead.Seal(dst[:0], nonce, src, sum[:])
		copy(src, dst)
		runs[i] = time.Since(t)
	}
	slices.Sort(runs)
	return runs[len(runs)/2]
}
