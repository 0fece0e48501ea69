package remote

import (
	"context"
	"net"
)

// SetDialContext makes d open its TCP connections with dial, so a test
// sees every connection attempted.
func SetDialContext(d *SSHDialer, dial func(ctx context.Context, network, address string) (net.Conn, error)) {
	d.dialContext = dial
}

// HoldReadBackSlots takes every read-back slot of the process until the
// returned function gives them back, so that a read-back must wait.
func HoldReadBackSlots() (release func()) {
	for range cap(readBackSlots) {
		readBackSlots <- struct{}{}
	}
	return func() {
		for range cap(readBackSlots) {
			<-readBackSlots
		}
	}
}
