//go:build !windows

package main

import (
	"context"
	"errors"
	"os"

	"github.com/openwmco/wmco/pkg/wicd"
)

// newBackend fails off Windows: the agent changes Windows services and
// features. Tests run the same logic in-process on the simulated host
// (test/winsim).
func newBackend() (*wicd.Backend, error) {
	return nil, errors.New("wicd runs on Windows only; the simulated host (test/winsim) runs it in-process")
}

func run(ctx context.Context, b *wicd.Backend, args []string) int {
	return wicd.Main(ctx, b, args, os.Stdout, os.Stderr)
}
