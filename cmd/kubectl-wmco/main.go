/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Command kubectl-wmco is the operator's kubectl plugin (`kubectl wmco`):
// check a Windows host before listing it (preflight), list the
// WindowsInstances (status), and read a Windows node's service logs
// through the API server (logs).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
