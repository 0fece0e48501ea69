// Package faults holds the fault matrix (make test-faults, build tag
// faults): faults injected into the whole system, on the local control
// plane with simulated Windows hosts and the operator as its own process,
// mid-join and mid-upgrade, with test/localenv's invariant checker running
// throughout.
package faults
